"""tools/download/verify.py on a bundle's ONNX rendition (docs/backends.md), offline, as download.sh --verify."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import bundle_writer  # noqa: E402
from tools.download import verify as V  # noqa: E402


def bundle(tmp_path: Path, onnx: object, with_files: tuple[str, ...] = ("inference.onnx", "parity.npz")) -> Path:
    """models/b with Paddle files, the rendition's files and a manifest listing ``with_files`` of them."""
    d = tmp_path / "models" / "b"
    d.mkdir(parents=True)
    for name in ("inference.json", "inference.pdiparams", "inference.yml", *with_files):
        (d / name).write_bytes(name.encode())
    manifest = {"schema": 1, "files": bundle_writer.bundle_file_hashes(d), "onnx": onnx}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def problems(root: Path) -> list[V.Item]:
    checker = V._Checker(root)
    checker.bundle("b")
    return [i for i in checker.items if i.status != V.OK]


def test_a_listed_rendition_verifies_file_by_file(tmp_path):
    root = bundle(tmp_path, {"file": "inference.onnx", "opset": 11})
    assert problems(root) == []
    (root / "models/b/parity.npz").write_bytes(b"tampered")
    (root / "models/b/inference.onnx").unlink()
    assert [(i.status, i.path) for i in problems(root)] == [
        (V.MISSING, "models/b/inference.onnx"),
        (V.CORRUPT, "models/b/parity.npz"),
    ]


@pytest.mark.parametrize("missing", ["inference.onnx", "parity.npz"])
def test_a_rendition_the_manifest_does_not_list_is_invalid(tmp_path, missing):
    listed = tuple(n for n in ("inference.onnx", "parity.npz") if n != missing)
    root = bundle(tmp_path, {"file": "inference.onnx"}, with_files=listed)
    [item] = problems(root)
    assert (item.status, item.kind, item.path) == (V.INVALID, "manifest", "models/b/manifest.json")
    assert missing in item.detail


def test_a_paddle_only_mark_and_no_record_are_fine_and_a_bad_record_is_not(tmp_path):
    assert problems(bundle(tmp_path / "a", {"unavailable": "Split with zero sizes"}, with_files=())) == []
    assert problems(bundle(tmp_path / "b", None, with_files=())) == []
    [item] = problems(bundle(tmp_path / "c", {"opset": 11}, with_files=()))
    assert item.status == V.INVALID and "names neither a file nor why not" in item.detail


def test_an_export_folder_kept_as_written_verifies_by_relative_path(tmp_path):
    """An Ultralytics Paddle export is a folder (models/yolov8n_pose_synthetic): its files are listed by
    path inside the bundle; a path that climbs out or is hidden is refused, not followed."""
    import hashlib

    d = tmp_path / "models" / "b"
    (d / "m_paddle_model" / "inference_model").mkdir(parents=True)
    graph = d / "m_paddle_model" / "inference_model" / "model.json"
    graph.write_bytes(b"graph")
    files = {"m_paddle_model/inference_model/model.json": hashlib.sha256(b"graph").hexdigest()}
    (d / "manifest.json").write_text(json.dumps({"files": files}))
    assert problems(tmp_path) == []
    graph.write_bytes(b"tampered")
    assert [(i.status, i.path) for i in problems(tmp_path)] == [
        (V.CORRUPT, "models/b/m_paddle_model/inference_model/model.json")
    ]
    for bad in ("../escape", "m_paddle_model/.hidden", "/etc/passwd", "a//b"):
        (d / "manifest.json").write_text(json.dumps({"files": {bad: "0" * 64}}))
        assert [(i.status, i.kind) for i in problems(tmp_path)] == [(V.INVALID, "manifest")], bad
