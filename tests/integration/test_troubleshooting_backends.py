"""trouble_shooting's backend check for real: its snippet runs in a runtime venv (the dev venv here), loads
each model on the backend its release chose, and compares with the bundle's parity record."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.paths import PACKAGE, REPO
from visionpack import config

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import backends  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402

VENV = Path(sys.executable).parent.parent
SOURCE = REPO / "models" / "mtcnn_rnet"


def test_the_chosen_backends_load_and_agree_and_a_damaged_rendition_is_caught(tmp_path, monkeypatch):
    release = tmp_path / "demo" / "releases" / "1.0.0"
    release.mkdir(parents=True)
    (release / "package").symlink_to(PACKAGE)
    broken = tmp_path / "broken"
    shutil.copytree(SOURCE, broken)
    (broken / "inference.onnx").write_bytes(b"not a model")
    plain = tmp_path / "plain"
    shutil.copytree(SOURCE, plain)
    models = {"good": str(SOURCE), "plain": str(plain), "broken": str(broken)}
    tuning = {"good": {"backend": "openvino"}, "broken": {"backend": "onnxruntime"}}
    (release / "config.yml").write_text(config.dump(config.from_mapping({"models": models, "tuning": tuning})))
    d = Deploy(root=tmp_path, name="demo", state={"release": "1.0.0", "service": "face", "port": 1})
    monkeypatch.setattr(type(d), "runtime", property(lambda self: VENV))
    ctx = Context(roots=[tmp_path], deploys=[d], package=REPO, diag_dir=REPO / "trouble_shooting")

    [r] = backends.checks(ctx)

    assert r.status == "FAIL" and r.detail == "backend of broken does not load or agree", r.lines
    assert r.lines[0].startswith("broken: onnxruntime FAILS: does not load or run: ONNX Runtime cannot load")
    assert r.lines[1].startswith("good: openvino agrees (max abs diff")
    assert r.lines[2].startswith("plain: paddle agrees (max abs diff")

    (release / "config.yml").write_text((release / "config.yml").read_text() + "secret_token: x\n")
    [r] = backends.checks(ctx)
    assert r.status == "WARN" and "unknown key(s) secret_token" in r.detail


def test_an_ultralytics_export_loads_on_its_backend(tmp_path, monkeypatch):
    """A YOLOv8-pose deploy's one model is `yolo export`'s output, not a PaddleX bundle: the check loads it
    as the keypoint service does (it reported every such deploy as failing before)."""
    from tests.yolo_onnx import metadata, pose_table, write_onnx

    export = write_onnx(tmp_path / "pose" / "yolov8n-pose.onnx", pose_table([], 84), metadata()).parent
    release = tmp_path / "yolo" / "releases" / "1.0.0"
    release.mkdir(parents=True)
    (release / "package").symlink_to(PACKAGE)
    cfg = config.from_mapping({"service": "keypoint", "models": {"pose": str(export)}})
    (release / "config.yml").write_text(config.dump(cfg))
    d = Deploy(root=tmp_path, name="yolo", state={"release": "1.0.0", "service": "keypoint", "port": 1})
    monkeypatch.setattr(type(d), "runtime", property(lambda self: VENV))
    ctx = Context(roots=[tmp_path], deploys=[d], package=REPO, diag_dir=REPO / "trouble_shooting")

    [r] = backends.checks(ctx)

    assert r.status == "PASS", r.lines
    assert r.lines == ["pose: onnxruntime loads (no parity record to compare with)"]
