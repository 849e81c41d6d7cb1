"""The GPU package variant's inputs (download.sh --gpu cu12, docs/gpu.md), checked without downloading them.

original/requirements-gpu-cu12.in must stay original/requirements.in with onnxruntime swapped for
onnxruntime-gpu, and original/requirements-gpu-cu12.lock the CPython 3.11 runtime lock with the same
swap plus CUDA 12's nvidia-* wheels, nothing else: the GPU package then serves exactly the CPU
package's answers with the same libraries. The real 2 GB build is a manual step (docs/gpu.md); CI
never downloads the GPU wheels.
"""

from __future__ import annotations

import re
import sys

from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.download.lockfile import canonical_name, parse_lock  # noqa: E402

ORIGINAL = REPO / "original"
GPU_IN = ORIGINAL / "requirements-gpu-cu12.in"
GPU_LOCK = ORIGINAL / "requirements-gpu-cu12.lock"
CP311 = {"python_version": "3.11", "python_full_version": "3.11.0", "implementation_name": "cpython"}
RELOCK = (
    "re-lock both with 'python3 tools/download/lock.py' on a connected machine (the GPU lock downloads "
    "about 2 GB once) and commit original/requirements*.lock"
)


def requirements(path) -> dict[str, Requirement]:
    """Requirements that apply to CPython 3.11, by canonical name."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or Marker(str(req.marker)).evaluate(CP311):
            out[canonical_name(req.name)] = req
    return out


def test_the_gpu_requirements_are_the_runtime_ones_with_onnxruntime_swapped():
    cpu, gpu = requirements(ORIGINAL / "requirements.in"), requirements(GPU_IN)
    assert "onnxruntime" in cpu and "onnxruntime" not in gpu, "the two onnxruntime wheels cannot share a venv"
    swapped = gpu.pop("onnxruntime-gpu")
    assert str(swapped.specifier) == "==1.26.0" and swapped.extras == {"cuda", "cudnn"}
    del cpu["onnxruntime"]
    # markers aside (the GPU lock is CPython 3.11 only; requirements.in's markers choose per Python)
    assert {n: (r.extras, str(r.specifier)) for n, r in gpu.items()} == {
        n: (r.extras, str(r.specifier)) for n, r in cpu.items()
    }, "original/requirements-gpu-cu12.in drifted from original/requirements.in: apply the same change there"


def test_the_gpu_lock_is_the_runtime_lock_with_onnxruntime_gpu_and_cuda_12_wheels():
    cpu = {canonical_name(e.name): e for e in parse_lock(ORIGINAL / "requirements.lock")}
    gpu = {canonical_name(e.name): e for e in parse_lock(GPU_LOCK)}
    shared = set(cpu) - {"onnxruntime"}
    differing = sorted(n for n in shared if gpu.get(n) != cpu[n])
    assert not differing, f"the GPU lock pins other files than the runtime lock for {differing}: {RELOCK}"
    added = set(gpu) - shared
    assert "onnxruntime" not in gpu and "onnxruntime-gpu" in added
    assert gpu["onnxruntime-gpu"].version == "1.26.0"
    cuda = added - {"onnxruntime-gpu"}
    assert cuda and all(re.fullmatch(r"nvidia-[a-z-]+-cu12", n) for n in cuda), sorted(cuda)
    # What onnxruntime-gpu's [cuda,cudnn] extras bring (cuDNN pulls cuBLAS in, cuFFT nvJitLink).
    for lib in ("cuda-runtime", "cudnn", "cublas", "cufft", "curand", "cuda-nvrtc"):
        assert f"nvidia-{lib}-cu12" in cuda


OLD_MANYLINUX = {"manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"}


def installable_on_cp311_glibc_2_28(filename: str) -> bool:
    python, abi, platforms = filename[:-4].split("-")[-3:]
    if not ({"py3", "cp311"} & set(python.split(".")) or abi == "abi3"):
        return False
    for tag in platforms.split("."):
        m = re.fullmatch(r"manylinux_2_(\d+)_x86_64", tag)
        if tag == "any" or tag in OLD_MANYLINUX or (m and int(m.group(1)) <= 28):
            return True
    return False


def test_the_gpu_lock_names_only_cp311_manylinux_x86_64_wheels_and_its_header_says_its_size():
    entries = parse_lock(GPU_LOCK)
    assert [e.filename for e in entries if not installable_on_cp311_glibc_2_28(e.filename)] == []
    total = sum(e.size or 0 for e in entries)
    assert f"# {len(entries)} files, {total / 1024**3:.1f} GB in all." in GPU_LOCK.read_text(encoding="utf-8")


def test_the_wheel_filter_refuses_what_cp311_on_glibc_2_28_cannot_install():
    assert installable_on_cp311_glibc_2_28("numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert installable_on_cp311_glibc_2_28("faiss_cpu-1.15.1-cp310-abi3-manylinux_2_28_x86_64.whl")
    assert not installable_on_cp311_glibc_2_28("x-1-cp312-cp312-manylinux_2_28_x86_64.whl")
    assert not installable_on_cp311_glibc_2_28("x-1-cp311-cp311-manylinux_2_34_x86_64.whl")
    assert not installable_on_cp311_glibc_2_28("x-1-py3-none-manylinux_2_34_aarch64.whl")


def test_lock_py_relocks_the_gpu_variant_with_the_runtime_lock(tmp_path, monkeypatch):
    from tools.download import lock

    (tmp_path / "original").mkdir()
    for name in ("requirements.in", GPU_IN.name):
        (tmp_path / "original" / name).write_bytes((ORIGINAL / name).read_bytes())
    resolved = []

    def resolve(args, dest, python, interpreter):  # pip download's part: one stand-in per direct requirement
        src = args[-1].rsplit("/", 1)[-1]
        resolved.append((src, python))
        for name, req in requirements(tmp_path / "original" / src).items():
            version = str(req.specifier).lstrip("=")
            (dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(name.encode())

    monkeypatch.setattr(lock, "pip_download", resolve)
    lock.lock_requirements(tmp_path, ("3.11",))
    assert resolved == [("requirements.in", "3.11"), (GPU_IN.name, "3.11")]
    relocked = {e.name: e.version for e in parse_lock(tmp_path / "original" / GPU_LOCK.name)}
    assert relocked["onnxruntime-gpu"] == "1.26.0" and "onnxruntime" not in relocked
    assert "from original/requirements-gpu-cu12.in" in (tmp_path / "original" / GPU_LOCK.name).read_text()
