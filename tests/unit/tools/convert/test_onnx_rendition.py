"""tools/convert/onnx_rendition.py around the conversion: caching, writing into the bundle, Paddle-only marks.

The conversion itself (paddle2onnx, the runtimes) is replaced by a fake ``render`` here; the real one
runs in tests/integration/test_onnx_rendition.py with the build environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import (
    bundle_writer,  # noqa: E402
    onnx_rendition as R,  # noqa: E402
)
from visionpack import bundle as B  # noqa: E402

CLS_YML = "Global:\n  model_name: tiny\nPreProcess:\n  transform_ops: []\nPostProcess:\n  Topk:\n    topk: 5\n"
RECORD = {"file": "inference.onnx", "opset": 11, "converter": {}, "batch": "dynamic", "fixes": [], "parity": {}}


def make(tmp_path: Path, manifest: bool = True) -> Path:
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "inference.json").write_bytes(b"graph")
    (d / "inference.pdiparams").write_bytes(b"params")
    (d / "inference.yml").write_text(CLS_YML)
    if manifest:
        files = bundle_writer.bundle_file_hashes(d)
        (d / "manifest.json").write_text(json.dumps({"schema": 1, "name": "b", "task": "face_feature", "files": files}))
    return d


@pytest.fixture
def renders(monkeypatch):
    """Count render() calls; each returns a rendition (or raises what the test puts in ``outcome``)."""
    calls: list[Path] = []
    outcome: dict[str, object] = {}

    def fake(bundle_dir, opset, sample, log):
        calls.append(bundle_dir)
        if "raise" in outcome:
            raise outcome["raise"]  # type: ignore[misc]
        log("fake render")
        return b"onnx-bytes", b"npz-bytes", dict(RECORD)

    monkeypatch.setattr(R, "render", fake)
    return calls, outcome


def test_a_rendition_is_written_and_then_cached(tmp_path, renders):
    calls, _ = renders
    d = make(tmp_path)
    said: list[str] = []
    assert R.process(d, log=said.append).startswith("converted in ")
    assert said == ["fake render"] and (d / "inference.onnx").read_bytes() == b"onnx-bytes"
    m = json.loads((d / "manifest.json").read_text())
    assert set(m["files"]) == {"inference.json", "inference.pdiparams", "inference.yml", "inference.onnx", "parity.npz"}
    assert bundle_writer.verify_bundle(d) == []
    assert m["onnx"]["build"]["tool"] == R.TOOL and m["onnx"]["build"]["inputs_sha256"]["inference.json"]
    assert m["parity_tolerance"] == B.PARITY_TOLERANCE["face_feature"]
    assert m["name"] == "b" and isinstance(m["onnx"]["seconds"], float)
    b = B.load_bundle(d)
    assert set(b.formats) == {"paddle", "onnx"} and b.parity == d / "parity.npz"
    assert R.process(d, log=said.append) == "up to date" and len(calls) == 1
    assert R.process(d, force=True, log=said.append).startswith("converted") and len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temp file left beside it


def test_a_changed_input_or_a_damaged_rendition_converts_again(tmp_path, renders):
    calls, _ = renders
    d = make(tmp_path)
    R.process(d, log=print)
    (d / "parity.npz").write_bytes(b"tampered")
    assert R.process(d, log=print) != "up to date" and len(calls) == 2
    (d / "inference.pdiparams").write_bytes(b"new weights")  # a rebuilt bundle writes its own manifest ...
    (d / "manifest.json").write_text(
        json.dumps({"schema": 1, "task": "face_feature", "files": bundle_writer.bundle_file_hashes(d)})
    )
    assert R.process(d, log=print) != "up to date" and len(calls) == 3
    assert R.process(d, sample=REPO / "package/samples/cat.jpg", log=print) != "up to date"  # another sample


def test_an_export_that_does_not_convert_is_marked_paddle_only(tmp_path, renders):
    calls, outcome = renders
    d = make(tmp_path)
    R.process(d, log=print)
    outcome["raise"] = R.Unconvertible("no runtime agrees with Paddle")
    assert R.process(d, force=True, log=print) == "paddle-only: no runtime agrees with Paddle"
    assert not (d / "inference.onnx").exists() and not (d / "parity.npz").exists()  # stale rendition gone
    m = json.loads((d / "manifest.json").read_text())
    assert m["onnx"]["unavailable"] == "no runtime agrees with Paddle" and "inference.onnx" not in m["files"]
    assert bundle_writer.verify_bundle(d) == []
    b = B.load_bundle(d)
    assert list(b.formats) == ["paddle"] and b.onnx_info["unavailable"]
    assert R.process(d, log=print) == "up to date" and len(calls) == 2  # the mark is cached too


def test_a_raw_paddlex_export_gets_a_manifest(tmp_path, renders):
    d = make(tmp_path, manifest=False)
    R.process(d, log=print)
    m = json.loads((d / "manifest.json").read_text())
    assert (m["schema"], m["name"], m["task"]) == (1, "bundle", "image_classification")
    assert set(m["files"]) == {"inference.json", "inference.pdiparams", "inference.yml", "inference.onnx", "parity.npz"}
    assert bundle_writer.verify_bundle(d) == []


def test_a_damaged_bundle_is_not_converted(tmp_path, renders):
    calls, _ = renders
    d = make(tmp_path)
    (d / "inference.pdiparams").write_bytes(b"corrupt")
    with pytest.raises(RuntimeError, match=r"inference.pdiparams \(mismatch\).*rebuild or re-copy"):
        R.process(d, log=print)
    assert calls == [] and not (d / "inference.onnx").exists()


def test_cli_converts_every_bundle_and_reports(tmp_path, renders, capsys):
    models = tmp_path / "models"
    models.mkdir()
    good = make(models)
    bad = models / "damaged"
    bad.mkdir()
    (bad / "inference.yml").write_text(CLS_YML)
    (bad / "manifest.json").write_text("{not json")
    (models / ".hidden").mkdir()
    assert R.bundle_dirs(models) == [good, bad]
    assert R.main(["--models", str(models)]) == R.EXIT_FAILED
    out, err = capsys.readouterr()
    assert "bundle: converted in" in out and "error: damaged: ModelInvalid" in err
    assert R.main(["--bundle", str(good)]) == R.EXIT_OK
    assert "bundle: up to date" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--bundle", "/nonexistent"], ["--models", "/nonexistent"], ["--sample", "/no.jpg"]])
def test_cli_usage_errors(tmp_path, args, capsys):
    if args[0] == "--sample":
        args = ["--bundle", str(make(tmp_path)), *args]
    assert R.main(args) == R.EXIT_USAGE
    assert "error: not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        R.main([])  # --bundle or --models is required
