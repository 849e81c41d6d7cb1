"""The environment check's gpu item: driver, CUDA, GPU index and GPU package, each failure with its fix."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from visionpack.errors import GpuUnavailable
from visionpack.installer import envcheck, gpucheck
from visionpack.installer.gpucheck import GpuFacts, check_gpu

TWO = ("GPU 0: NVIDIA A10 (UUID: GPU-aaaa)", "GPU 1: NVIDIA L4 (UUID: GPU-bbbb)")
GOOD = GpuFacts("550.54.14", (12, 4), TWO)
NONE = GpuFacts(None, None, (), "no NVIDIA kernel module loaded (/proc/driver/nvidia/version absent)")


def test_a_gpu_deploy_on_a_gpu_machine_with_the_gpu_package_passes():
    c = check_gpu("gpu:1", GOOD, True)
    assert c.ok and "NVIDIA L4" in c.detail and "CUDA 12.4" in c.detail


@pytest.mark.parametrize("facts", [GOOD, NONE])
@pytest.mark.parametrize("gpu_runtime", [True, False])
def test_a_cpu_deploy_only_reports_what_the_machine_has(facts, gpu_runtime):
    c = check_gpu("cpu", facts, gpu_runtime)
    assert c.ok and c.detail.startswith("device cpu; ")
    assert ("no NVIDIA driver" in c.detail) == (facts is NONE)
    assert ("GPU package" if gpu_runtime else "CPU package") in c.detail


@pytest.mark.parametrize(
    ("facts", "gpu_runtime", "said", "fix"),
    [
        (NONE, True, "no NVIDIA kernel module", "Install the NVIDIA driver 525.60.13 or newer"),
        (GpuFacts("470.42.01", (11, 4), TWO), True, "supports CUDA 11.4", "Upgrade to the NVIDIA driver"),
        (GpuFacts("550.54.14", None, TWO), True, "CUDA unknown", "Upgrade to the NVIDIA driver"),
        (GpuFacts("550.54.14", (12, 4), TWO[:1]), True, "GPUs are gpu:0..gpu:0", "--device gpu:N"),
        (GpuFacts("550.54.14", (12, 4), (), "nvidia-smi -L exit 9: No devices were found"), True, "are none", "-L"),
        (GOOD, False, "no CUDA support (CPU package", "download.sh --gpu cu12"),
    ],
)
def test_each_reason_a_gpu_deploy_cannot_run_is_named_with_its_fix(facts, gpu_runtime, said, fix):
    c = check_gpu("gpu:1", facts, gpu_runtime)
    assert not c.ok and c.error is GpuUnavailable
    assert said in c.detail, c.detail
    assert fix in c.fix, c.fix


def test_the_driver_version_file(tmp_path):
    f = tmp_path / "version"
    f.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\nGCC version: gcc 12\n"
    )
    assert gpucheck.driver_version(f) == "550.54.14"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build\n")
    assert gpucheck.driver_version(f) == "560.35.03"
    f.write_text("something else\n")
    assert gpucheck.driver_version(f) == "unknown version"
    assert gpucheck.driver_version(tmp_path / "absent") is None


class FakeLibcuda:
    def __init__(self, version: int, rc: int = 0) -> None:
        self.version, self.rc = version, rc

    def cuDriverGetVersion(self, ref) -> int:  # noqa: N802 (the C function's name)
        ref._obj.value = self.version
        return self.rc


def test_the_cuda_version_comes_from_libcuda():
    assert gpucheck.cuda_version(lambda _: FakeLibcuda(12040)) == (12, 4)
    assert gpucheck.cuda_version(lambda _: FakeLibcuda(11080)) == (11, 8)
    assert gpucheck.cuda_version(lambda _: FakeLibcuda(12040, rc=3)) is None

    def missing(name: str) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    assert gpucheck.cuda_version(missing) is None


def test_the_gpu_list_and_why_it_is_empty(monkeypatch):
    monkeypatch.setattr(gpucheck.shutil, "which", lambda _: "/usr/bin/nvidia-smi")

    def smi(out: str, rc: int = 0, err: str = ""):
        return lambda cmd, **kw: subprocess.CompletedProcess(cmd, rc, out, err)

    assert gpucheck.list_gpus(smi("\n".join(TWO) + "\n")) == (TWO, "")
    assert gpucheck.list_gpus(smi("", 9, "No devices were found\n")) == (
        (),
        "nvidia-smi -L exit 9: No devices were found",
    )

    def broken(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, 30)

    gpus, why = gpucheck.list_gpus(broken)
    assert gpus == () and why.startswith("nvidia-smi failed")


def test_the_gpu_package_is_the_gpu_lock_with_its_onnxruntime_gpu_wheel(tmp_path):
    assert not gpucheck.gpu_package(tmp_path)
    lock = tmp_path / gpucheck.GPU_LOCK
    lock.parent.mkdir(parents=True)
    wheel = "onnxruntime_gpu-1.26.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    lock.write_text(f"onnxruntime-gpu==1.26.0 --hash=sha256:{'0' * 64}  # file: {wheel} size: 1\n")
    assert not gpucheck.gpu_package(tmp_path)  # the lock without its wheel: a damaged GPU package
    (tmp_path / "original" / "wheels").mkdir()
    (tmp_path / "original" / "wheels" / wheel).write_bytes(b"x")
    assert gpucheck.gpu_package(tmp_path)


def test_this_package_as_checked_out_is_the_cpu_package():
    from tests.paths import REPO

    # The repository holds the GPU lock, but its wheelhouse is the CPU one unless
    # 'download.sh --gpu cu12' ran here: the onnxruntime-gpu wheel decides.
    wheels = list((REPO / "original" / "wheels").glob("onnxruntime_gpu-*.whl"))
    assert gpucheck.gpu_package(REPO) == bool(wheels)


def test_the_environment_check_on_this_machine(tmp_path):
    """The real answer here: the facts of this machine, whatever it has (CI has no NVIDIA driver)."""
    from tests.paths import REPO

    facts = gpucheck.read_facts()
    has_driver = Path("/proc/driver/nvidia/version").exists()
    assert (facts.driver is not None) == has_driver
    cpu = gpucheck.check("cpu", REPO)
    assert cpu.ok and cpu.name == "gpu"
    gpu = gpucheck.check("gpu:0", REPO)
    if not has_driver:
        assert not gpu.ok and gpu.error is GpuUnavailable
        assert "no NVIDIA kernel module" in gpu.detail and "--device cpu" in gpu.fix
        assert "no NVIDIA driver" in cpu.detail
    else:  # a GPU machine: the check agrees with the facts it read
        assert gpu.ok == (
            facts.cuda is not None
            and facts.cuda >= gpucheck.MIN_CUDA
            and bool(facts.gpus)
            and gpucheck.gpu_package(REPO)
        )


def test_envcheck_run_carries_the_gpu_item_and_its_exit_code(monkeypatch, tmp_path):
    from visionpack.installer.source import Source

    # An empty package (its other items fail: only the gpu item is looked at; no wheelhouse to hash).

    monkeypatch.setattr(gpucheck, "read_facts", lambda: NONE)
    report = envcheck.run(Source(tmp_path), tmp_path, "demo-x", "127.0.0.1", 0, [], device="gpu:0")
    item = next(c for c in report.checks if c.name == "gpu")
    assert not item.ok and item in report.failures
    assert "[FAIL] gpu: device gpu:0: no NVIDIA kernel module" in "\n".join(report.lines())
    only_gpu = envcheck.Report([item])
    err = envcheck.error_for(only_gpu)
    assert isinstance(err, GpuUnavailable) and err.exit_code == 24
    cpu = envcheck.run(Source(tmp_path), tmp_path, "demo-x", "127.0.0.1", 0, [])
    assert next(c for c in cpu.checks if c.name == "gpu").ok
