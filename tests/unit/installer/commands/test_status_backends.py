"""status shows, per model, the backend the current release runs and what install/upgrade measured (issue 16)."""

from __future__ import annotations

from tests.unit.installer.commands.test_status import deploy_doc
from visionpack import config
from visionpack.installer.commands import status as cmd

TUNING = {
    "classifier": {
        "backend": "onnxruntime",
        "candidates": {
            "onnxruntime": {"ok": True, "p50_ms": 7.25},
            "openvino": {"ok": False, "why": "disagrees with Paddle: max abs diff 0.02"},
            "paddle": {"ok": True, "p50_ms": 11.5},
        },
    }
}


def release(tmp_path, **values):
    models = {"classifier": "/m/c", "detector": "/m/d"}
    (tmp_path / "config.yml").write_text(config.dump(config.from_mapping({"models": models, **values})))
    return tmp_path


def test_the_measured_choice_and_its_numbers_per_model(tmp_path):
    got = cmd._backends(release(tmp_path, tuning=TUNING, model_backends={"detector": "paddle"}))
    assert got["classifier"] == {
        "backend": "onnxruntime",
        "how": "measured",
        "p50_ms": {
            "onnxruntime": 7.25,
            "openvino": "not chosen: disagrees with Paddle: max abs diff 0.02",
            "paddle": 11.5,
        },
    }
    assert got["detector"] == {"backend": "paddle", "how": "configured"}
    doc = {**deploy_doc("running", {"ok": False, "reason": "x", "detail": "y"}), "backends": got}
    lines = cmd.render({"root": "/r", "deploys": [doc]})
    assert (
        "  backend classifier: onnxruntime (measured; p50 onnxruntime 7.25 ms, openvino not chosen: "
        "disagrees with Paddle: max abs diff 0.02, paddle 11.50 ms)"
    ) in lines
    assert "  backend detector: paddle (configured)" in lines


def test_nothing_measured_and_a_damaged_config_never_fail_status(tmp_path):
    got = cmd._backends(release(tmp_path))
    assert got["classifier"] == {"backend": None, "how": "the bundle's own format (nothing measured)"}
    assert "error" in cmd._backends(tmp_path / "gone")
    doc = {**deploy_doc("stopped", {"ok": False, "reason": "x", "detail": "y"}), "backends": {"error": "bad"}}
    assert "  backends: bad" in cmd.render({"root": "/r", "deploys": [doc]})
