"""download.sh --gpu cu12 builds the GPU package variant: its lock's wheels join the wheelhouse, the
variant is recorded, --verify checks it, the installer builds the runtime from the GPU lock; a build
without --gpu takes the variant's wheels out again.

The real GPU lock names 2 GB of wheels, so the tree's GPU lock is replaced by a small one of the
same shape: the runtime lock with onnxruntime swapped for stand-in onnxruntime-gpu and
nvidia-cudnn-cu12 wheels (real, installable wheels of a few hundred bytes, made here), served from a
file:// index, with no network (unshare -n). tests/unit/tools/download/test_gpu_variant.py checks
the real GPU lock's shape; docs/gpu.md has the real build as a manual step.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

from tests.integration.test_download import (  # noqa: F401 (fixtures, received as parameters)
    OFFLINE_ENV,
    complete,
    file_index,
    run,
    tree,
)
from tools.download import lockfile
from visionpack.installer import gpucheck
from visionpack.installer.source import Source

STAND_INS = {
    "onnxruntime-gpu": ("1.26.0", "onnxruntime_gpu-1.26.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
    "nvidia-cudnn-cu12": ("9.28.0.42", "nvidia_cudnn_cu12-9.28.0.42-py3-none-manylinux_2_27_x86_64.whl"),
}


def stand_in_wheel(directory: Path, name: str, version: str, filename: str) -> Path:
    """A minimal valid wheel (dist-info only) named ``filename``."""
    dist = filename.split("-")[0]
    info = f"{dist}-{version}.dist-info"
    tag = "-".join(filename[:-4].split("-")[-3:])
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: visionpack-test\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    record = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    path = directory / filename
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
        z.writestr(f"{info}/RECORD", record)
    return path


def small_gpu_lock(tree: Path, wheels: list[Path]) -> list[lockfile.LockEntry]:
    """tree's GPU lock: its runtime lock without onnxruntime, plus the stand-ins."""
    entries = [e for e in lockfile.parse_lock(tree / "original" / "requirements.lock") if e.name != "onnxruntime"]
    added = []
    for (name, (version, _)), wheel in zip(STAND_INS.items(), wheels):
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        added.append(lockfile.LockEntry(name, version, sha, wheel.name, wheel.stat().st_size))
    lines = "".join(e.lock_line() + "\n" for e in sorted(entries + added, key=lambda e: e.name))
    (tree / "original" / "requirements-gpu-cu12.lock").write_text("# stand-in GPU lock (test)\n" + lines)
    return added


def test_the_gpu_variant_is_built_verified_installed_from_and_taken_out_again(tree: Path, tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    wheels = [stand_in_wheel(made, name, v, f) for name, (v, f) in STAND_INS.items()]
    added = small_gpu_lock(tree, wheels)
    index = file_index(tmp_path, wheels)
    env = {**OFFLINE_ENV, "PIP_INDEX_URL": index}

    # --python 3.11: one wheelhouse to hash instead of four (the GPU variant is CPython 3.11's).
    proc = run(["bash", str(tree / "download.sh"), "--no-models", "--python", "3.11", "--gpu", "cu12"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for e in added:
        assert f"{e.filename} ok (downloaded" in proc.stdout
        assert (tree / "original" / "wheels" / e.filename).is_file()
    # The CPU runtime stays: the package installs CPU-only too, under another Python or without a GPU.
    cpu_ort = next(e for e in lockfile.parse_lock(tree / "original" / "requirements.lock") if e.name == "onnxruntime")
    assert (tree / "original" / "wheels" / cpu_ort.filename).is_file()
    record = json.loads((tree / "original" / "wheelhouse.json").read_text())
    assert record["options"] == ["gpu-cu12"]

    proc = run(["bash", str(tree / "download.sh"), "--verify"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for e in added:
        assert f"original/wheels/{e.filename}" in proc.stdout

    # What install.py and its environment check make of it.
    assert Source(tree).lock_for((3, 11)) == tree / "original" / "requirements-gpu-cu12.lock"
    assert gpucheck.gpu_package(tree)

    (tree / "original" / "wheels" / added[1].filename).unlink()
    proc = run(["bash", str(tree / "download.sh"), "--verify"])
    assert proc.returncode == lockfile.EXIT_INCOMPLETE
    assert f"MISSING  wheel    original/wheels/{added[1].filename}" in proc.stdout

    # A build without --gpu is the CPU package again: the variant's wheels leave the wheelhouse.
    proc = run(["bash", str(tree / "download.sh"), "--no-models", "--python", "3.11"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"removing {added[0].filename}: not in the lock" in proc.stdout
    assert not (tree / "original" / "wheels" / added[0].filename).exists()
    assert json.loads((tree / "original" / "wheelhouse.json").read_text())["options"] == []
    assert Source(tree).lock_for((3, 11)) == tree / "original" / "requirements.lock"
    assert not gpucheck.gpu_package(tree)


def test_an_unknown_gpu_variant_is_a_usage_error(tree: Path) -> None:
    proc = run(["bash", str(tree / "download.sh"), "--no-models", "--gpu", "cu11"])
    assert proc.returncode == lockfile.EXIT_USAGE
    assert "gpu-cu11" in proc.stderr and not (tree / "original" / "wheels" / STAND_INS["onnxruntime-gpu"][1]).exists()
