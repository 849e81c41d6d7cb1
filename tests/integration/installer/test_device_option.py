"""install --device gpu:N on a machine that cannot serve it: the environment check's gpu item fails,
exit 24 (gpu-unavailable), nothing is written. GPU 999 exists on no machine, so the answer is the same
with or without an NVIDIA driver (only its reason differs)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.paths import PACKAGE

INSTALL = PACKAGE / "Install" / "install.py"
EXIT_GPU_UNAVAILABLE = 24  # GpuUnavailable, README error table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_gpu_this_machine_lacks_stops_install_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cmd = [sys.executable, str(INSTALL), "--root", str(root), "install", "demo-classify", "--host", "127.0.0.1"]
    proc = subprocess.run(
        [*cmd, "--port", str(free_port()), "--device", "gpu:999"], capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == EXIT_GPU_UNAVAILABLE, out
    no_driver = not Path("/proc/driver/nvidia/version").exists()
    reason = "no NVIDIA kernel module loaded" if no_driver else "this machine's GPUs are"
    assert f"[FAIL] gpu: device gpu:999: {reason}" in out, out
    assert "error: environment check failed (gpu)" in out
    assert "hint: Run 'nvidia-smi -L'" in out
    assert not root.exists()


def test_a_malformed_device_is_refused_as_a_config_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    proc = subprocess.run(
        [sys.executable, str(INSTALL), "--root", str(root), "install", "demo-classify", "--device", "cuda:0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 19, proc.stdout + proc.stderr  # ConfigInvalid
    assert "device must be 'cpu' or 'gpu:N'" in proc.stderr
    assert not root.exists()


def test_a_gpu_device_in_a_docker_container_is_refused_first(tmp_path: Path) -> None:
    # The image is the CPU runtime and containers get no GPU: refused before Docker is even asked.
    root = tmp_path / "root"
    proc = subprocess.run(
        [sys.executable, str(INSTALL), "--root", str(root), "install", "demo-classify"]
        + ["--runtime", "docker", "--device", "gpu:0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == EXIT_GPU_UNAVAILABLE, proc.stdout + proc.stderr
    assert "error: device gpu:0: the docker runtime runs on the CPU only (docs/gpu.md)" in proc.stderr
    assert not root.exists()
