"""tools/convert/export_manifest.py: an Ultralytics export dropped into models/ gets the manifest that
download.sh --verify and install check it by, its files untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import export_manifest as M  # noqa: E402
from tools.download import verify as V  # noqa: E402


def export(models: Path, name: str) -> Path:
    d = models / name
    (d / "my-pose_paddle_model" / "inference_model").mkdir(parents=True)
    (d / "my-pose.onnx").write_bytes(b"onnx")
    (d / "my-pose_paddle_model" / "metadata.yaml").write_text("task: pose\n")
    (d / "my-pose_paddle_model" / "inference_model" / "model.json").write_text("{}")
    return d


def test_every_export_without_a_manifest_is_recorded_and_then_verifies(tmp_path):
    models = tmp_path / "models"
    d = export(models, "my_pose")
    paddlex = models / "bundle"
    paddlex.mkdir()
    (paddlex / "inference.yml").write_text("Global: {}\n")  # a PaddleX bundle: onnx_rendition's business
    assert M.main(["--models", str(models)]) == 0
    manifest = json.loads((d / "manifest.json").read_text())
    assert sorted(manifest["files"]) == [
        "my-pose.onnx",
        "my-pose_paddle_model/inference_model/model.json",
        "my-pose_paddle_model/metadata.yaml",
    ]
    assert manifest["kind"] == M.KIND and not (paddlex / "manifest.json").exists()
    checker = V._Checker(tmp_path)
    checker.bundle("my_pose")
    assert [i.status for i in checker.items] == [V.OK] * 3
    (d / "my-pose.onnx").write_bytes(b"tampered")
    before = (d / "manifest.json").read_text()
    assert M.main(["--models", str(models)]) == 0  # a recorded export is not re-recorded: damage shows
    assert (d / "manifest.json").read_text() == before


def test_a_named_export_is_re_recorded_keeping_the_manifest_s_other_keys(tmp_path):
    d = export(tmp_path, "demo")
    (d / "manifest.json").write_text(json.dumps({"source": {"seed": 1}, "files": {"gone.onnx": "0" * 64}}))
    assert M.main([str(d)]) == 0
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["source"] == {"seed": 1} and "gone.onnx" not in manifest["files"]
    assert len(manifest["files"]) == 3


def test_a_directory_without_an_export_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert M.main([str(tmp_path / "empty")]) == 2
    assert "holds no Ultralytics export" in capsys.readouterr().err
