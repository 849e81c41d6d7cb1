"""ONNX renditions for real: the converter in the build environment, and every demo bundle's record.

The converter runs as download.sh runs it (original/.state/buildenv: Paddle, paddle2onnx, onnx,
ONNX Runtime, OpenVINO; tests/run.sh runs download.sh first), on copies of demo bundles: the
detector (split/flip and fixed-batch fixes), a raw PaddleX export without a manifest, and an export
that does not convert. The renditions in models/ are then checked again here with the real
runtimes against their own parity.npz, and an ONNX-only bundle is loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import bundle_writer, onnx_parity  # noqa: E402
from tools.download import catalog  # noqa: E402
from visionpack import bundle as B  # noqa: E402

BUILD_PY = REPO / "original" / ".state" / "buildenv" / "bin" / "python"
TOOL = REPO / "tools" / "convert" / "onnx_rendition.py"
MODELS = REPO / "models"
PADDLE_FILES = ("inference.json", "inference.pdiparams", "inference.yml")


def convert(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUILD_PY), str(TOOL), *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Copies of demo bundles, converted in one run (Paddle is imported once)."""
    assert BUILD_PY.is_file(), "no build environment: run download.sh first (tests/run.sh does)"
    root = tmp_path_factory.mktemp("renditions")
    det = root / "det"
    shutil.copytree(MODELS / "person_det_synthetic", det)
    raw, broken = root / "raw", root / "broken"
    for d in (raw, broken):  # raw PaddleX exports: no manifest
        d.mkdir()
        for name in PADDLE_FILES:
            shutil.copy2(MODELS / "tinypose_synthetic" / name, d / name)
    (broken / "inference.json").write_text('{"base_code": {"magic": "not a program"}}')
    proc = convert("--force", "--bundle", str(det), "--bundle", str(raw), "--bundle", str(broken))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"det": det, "raw": raw, "broken": broken, "stdout": proc.stdout}


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def test_detector_is_fixed_at_conversion_and_agrees(converted):
    det = converted["det"]
    record = manifest(det)["onnx"]
    assert record["converter"] == {"paddle2onnx": "2.1.0", "onnx": "1.17.0"} and record["opset"] == 11
    assert record["batch"] == 1
    assert any(f.startswith("Split ") and "split=[0, -1]" in f for f in record["fixes"])
    assert any("batch pinned to 1" in f for f in record["fixes"])
    for runtime in ("onnxruntime", "openvino"):
        assert record["parity"][runtime]["agrees"] is True, record["parity"]
        assert record["parity"][runtime]["max_abs_diff"] < 1e-3
    assert bundle_writer.verify_bundle(det) == []
    # paddle2onnx and our edits are deterministic: the committed rendition is this very graph
    assert (det / "inference.onnx").read_bytes() == (MODELS / "person_det_synthetic" / "inference.onnx").read_bytes()


def test_a_raw_export_gets_a_rendition_and_a_manifest(converted):
    raw = converted["raw"]
    m = manifest(raw)
    assert m["task"] == "keypoint_detection" and m["onnx"]["batch"] == "dynamic"
    assert set(m["files"]) == {*PADDLE_FILES, "inference.onnx", "parity.npz"}
    assert m["parity_tolerance"] == B.PARITY_TOLERANCE["keypoint_detection"]
    feeds, outputs = onnx_parity.read_parity(raw / "parity.npz")
    assert feeds["image"].shape == (2, 3, 128, 96) and len(outputs) == 2  # a batch of two: image + mirror
    assert bundle_writer.verify_bundle(raw) == []


def test_an_export_that_does_not_convert_is_marked_paddle_only(converted):
    broken = converted["broken"]
    why = manifest(broken)["onnx"]["unavailable"]
    assert why.startswith("paddle2onnx 2.1.0 cannot convert inference.json")
    assert f"broken: paddle-only: {why}" in converted["stdout"]
    assert not (broken / "inference.onnx").exists() and list(B.load_bundle(broken).formats) == ["paddle"]


def test_a_second_run_converts_nothing(converted):
    dirs = [converted[k] for k in ("det", "raw", "broken")]
    before = {d: (d / "manifest.json").read_bytes() for d in dirs}
    started = time.monotonic()
    proc = convert(*[a for d in dirs for a in ("--bundle", str(d))])
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(": up to date") == 3, proc.stdout
    assert {d: (d / "manifest.json").read_bytes() for d in dirs} == before
    assert took < 60, took  # no Paddle, no conversion: hashing only (about 1 s here)


def test_an_onnx_only_bundle_loads_and_runs(converted, tmp_path):
    only = tmp_path / "onnx-only"
    only.mkdir()
    shutil.copy2(converted["raw"] / "inference.onnx", only / "pose.onnx")
    shutil.copy2(converted["raw"] / "inference.yml", only / "inference.yml")
    b = B.load_bundle(only)
    assert b.formats == {"onnx": only / "pose.onnx"} and b.task == "keypoint_detection" and b.parity is None
    feeds, outputs = onnx_parity.read_parity(converted["raw"] / "parity.npz")
    got = onnx_parity.run_onnxruntime(b.model_file.read_bytes(), feeds)
    assert onnx_parity.compare(outputs, got, b.task)["max_abs_diff"] < 1e-4


# The catalog's PaddleX bundles; an Ultralytics export (yolov8n_pose_synthetic) is served as `yolo export`
# wrote it, with no rendition of ours (test_yolo_pose_demo.py checks it).
PADDLEX_BUNDLES = [
    n for n in catalog.bundle_names(REPO / "package" / "catalog.yml") if not B.exported_model(MODELS / n)
]


@pytest.mark.parametrize("name", PADDLEX_BUNDLES)
def test_every_demo_bundle_has_a_rendition_that_agrees_with_paddle(name):
    """Real ONNX Runtime and OpenVINO, now, against the Paddle outputs recorded at build time."""
    b = B.load_bundle(MODELS / name)
    record = b.onnx_info
    assert set(b.formats) == {"paddle", "onnx"} and b.parity is not None, record
    assert bundle_writer.verify_bundle(b.path) == []
    feeds, reference = onnx_parity.read_parity(b.parity)
    model = b.formats["onnx"].read_bytes()
    for runtime, run in onnx_parity.RUNTIMES.items():
        assert record["parity"][runtime]["agrees"] is True, (runtime, record["parity"])
        measured = onnx_parity.compare(reference, run(model, feeds), b.task)
        assert onnx_parity.agrees(measured, b.parity_tolerance), (runtime, measured)
        assert np.isfinite(measured["max_abs_diff"])
