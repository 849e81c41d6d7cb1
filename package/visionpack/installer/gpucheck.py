"""The environment check's GPU item: NVIDIA driver, the CUDA version it supports, its GPUs, and whether the
package's runtime can use them (the GPU package variant, docs/gpu.md).

Read from the machine the way an operator would check by hand: the kernel module's version file,
``libcuda.so.1``'s ``cuDriverGetVersion`` (no GPU is touched: it needs no ``cuInit``) and
``nvidia-smi -L`` for the GPUs in index order, the order ``device: gpu:N`` and the license's GPU
binding use. Every failure says what to fix.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

from ..errors import GpuUnavailable, InstallerError

NVIDIA_VERSION = Path("/proc/driver/nvidia/version")
# onnxruntime-gpu 1.26 and the nvidia-*-cu12 wheels are CUDA 12: a driver that supports 12.0 runs
# them (CUDA minor-version compatibility), i.e. 525.60.13 or newer on Linux.
MIN_CUDA = (12, 0)
MIN_DRIVER = "525.60.13"
GPU_LOCK = "original/requirements-gpu-cu12.lock"
_DEVICE = re.compile(r"gpu:(\d+)")


class Check(NamedTuple):
    """The fields of envcheck.Check, in its order (envcheck makes one of it: ``Check(*this)``;
    envcheck imports this module, so this one cannot import envcheck)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    error: type[InstallerError] = GpuUnavailable


def check(device: str, top: Path) -> Check:
    """The ``gpu`` item for a deploy on ``device`` of the package under ``top``, from this machine."""
    return check_gpu(device, read_facts(), gpu_package(top))


@dataclass(frozen=True)
class GpuFacts:
    """What this machine has: ``driver`` None without the NVIDIA kernel module; ``cuda`` the highest
    CUDA version the driver supports (None when libcuda cannot be loaded); ``gpus`` the
    ``nvidia-smi -L`` lines in index order; ``problem`` why nvidia-smi gave no list."""

    driver: str | None
    cuda: tuple[int, int] | None
    gpus: tuple[str, ...]
    problem: str = ""


def driver_version(path: Path = NVIDIA_VERSION) -> str | None:
    """The loaded kernel module's version ("550.54.14"), None without one."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"Kernel Module(?: for [\w-]+)?\s+(\d+(?:\.\d+)+)", text)
    return m.group(1) if m else "unknown version"


def cuda_version(load: Callable[[str], ctypes.CDLL] = ctypes.CDLL) -> tuple[int, int] | None:
    """The CUDA version the installed driver library supports, e.g. (12, 4); None without libcuda."""
    try:
        lib = load("libcuda.so.1")
        out = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(out)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return out.value // 1000, (out.value % 1000) // 10


def list_gpus(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> tuple[tuple[str, ...], str]:
    """(``nvidia-smi -L`` lines, why there are none)."""
    exe = shutil.which("nvidia-smi") or next(
        (p for p in ("/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi") if Path(p).exists()), None
    )
    if exe is None:
        return (), "nvidia-smi not found"
    try:
        proc = run([exe, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return (), f"nvidia-smi failed: {exc}"
    lines = tuple(ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("GPU "))
    if proc.returncode != 0 or not lines:
        said = (proc.stdout + proc.stderr).strip().splitlines()
        return (), f"nvidia-smi -L exit {proc.returncode}: {said[-1] if said else 'no output'}"
    return lines, ""


def read_facts() -> GpuFacts:
    driver = driver_version()
    if driver is None:
        return GpuFacts(None, None, (), "no NVIDIA kernel module loaded (/proc/driver/nvidia/version absent)")
    gpus, problem = list_gpus()
    return GpuFacts(driver, cuda_version(), gpus, problem)


def gpu_package(top: Path) -> bool:
    """The package is the GPU variant: its GPU lock is there with the onnxruntime-gpu wheel it names."""
    lock = top / GPU_LOCK
    try:
        text = lock.read_text(encoding="utf-8")
    except OSError:
        return False
    m = re.search(r"#\s*file:\s*(onnxruntime_gpu-\S+\.whl)", text)
    return m is not None and (top / "original" / "wheels" / m.group(1)).is_file()


def _shown(facts: GpuFacts) -> str:
    if facts.driver is None:
        return "no NVIDIA driver"
    cuda = f"CUDA {facts.cuda[0]}.{facts.cuda[1]}" if facts.cuda else "CUDA version unknown (libcuda.so.1 not loadable)"
    gpus = f"{len(facts.gpus)} GPU(s)" if facts.gpus else f"no GPU listed ({facts.problem})"
    return f"NVIDIA driver {facts.driver} ({cuda}), {gpus}"


def check_gpu(device: str, facts: GpuFacts, has_gpu_runtime: bool) -> Check:
    """The ``gpu`` line of the environment check for a deploy on ``device`` (``cpu`` | ``gpu:N``)."""
    m = _DEVICE.fullmatch(device)
    if m is None:  # cpu: the facts are information, never a failure
        runtime = "GPU package" if has_gpu_runtime else "CPU package"
        return Check("gpu", True, f"device {device}; {_shown(facts)}; {runtime}")
    index = int(m.group(1))
    install_driver = (
        f"Install the NVIDIA driver {MIN_DRIVER} or newer (CUDA 12) and check it with 'nvidia-smi', "
        "or install the deploy with --device cpu"
    )
    if facts.driver is None:
        return Check("gpu", False, f"device {device}: {facts.problem}", install_driver, GpuUnavailable)
    if facts.cuda is None or facts.cuda < MIN_CUDA:
        seen = f"{facts.cuda[0]}.{facts.cuda[1]}" if facts.cuda else "unknown (libcuda.so.1 not loadable)"
        return Check(
            "gpu",
            False,
            f"device {device}: NVIDIA driver {facts.driver} supports CUDA {seen}; the runtime needs CUDA 12",
            install_driver.replace("Install", "Upgrade to", 1),
            GpuUnavailable,
        )
    if index >= len(facts.gpus):
        have = f"gpu:0..gpu:{len(facts.gpus) - 1}" if facts.gpus else "none"
        return Check(
            "gpu",
            False,
            f"device {device}: this machine's GPUs are {have} ({facts.problem or '; '.join(facts.gpus)})",
            "Pick one of the listed GPUs with --device gpu:N ('nvidia-smi -L' shows them in that order)",
            GpuUnavailable,
        )
    if not has_gpu_runtime:
        return Check(
            "gpu",
            False,
            f"device {device}: this package's runtime has no CUDA support (CPU package: {GPU_LOCK} or its "
            "onnxruntime-gpu wheel is missing)",
            "Use the GPU package: on a connected machine 'bash download.sh --gpu cu12', then copy the whole "
            "directory (docs/gpu.md); or install with --device cpu",
            GpuUnavailable,
        )
    return Check("gpu", True, f"device {device} = {facts.gpus[index]}; {_shown(facts)}; GPU package")
