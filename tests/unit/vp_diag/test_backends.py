"""trouble_shooting's backend check: each model's chosen backend loads and agrees with its parity record
(the snippet itself runs in a real runtime in tests/integration/test_troubleshooting_backends.py)."""

from __future__ import annotations

import sys

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import backends  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402


def ctx_and_deploy(tmp_path):
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    (tmp_path / "demo" / "releases" / "1.0.0").mkdir(parents=True)
    d = Deploy(root=tmp_path, name="demo", state={"release": "1.0.0", "service": "classification", "port": 1})
    ctx.deploys = [d]
    return ctx, d


def test_every_model_agreeing_passes(tmp_path, monkeypatch):
    ctx, d = ctx_and_deploy(tmp_path)
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    res = {"classifier": {"backend": "onnxruntime", "ok": True, "max_abs_diff": 4.6e-7, "precision": "f32"}}
    monkeypatch.setattr(backends.venv_exec, "run", lambda *a, **k: (res, ""))
    [r] = backends.checks(ctx)
    assert r.status == "PASS" and "classifier onnxruntime" in r.detail
    assert r.lines == ["classifier: onnxruntime agrees (max abs diff 4.6e-07)"]


def test_a_backend_that_disagrees_or_fails_fails_with_the_tune_command(tmp_path, monkeypatch):
    ctx, d = ctx_and_deploy(tmp_path)
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    res = {
        "classifier": {"backend": "openvino", "ok": False, "why": "disagrees with Paddle: max abs diff 0.02"},
        "feature": {"backend": "paddle", "ok": True, "note": "loads (no parity record to compare with)"},
    }
    monkeypatch.setattr(backends.venv_exec, "run", lambda *a, **k: (res, ""))
    [r] = backends.checks(ctx)
    assert r.status == "FAIL" and r.detail == "backend of classifier does not load or agree"
    assert "tune demo" in r.fix[0]
    assert "classifier: openvino FAILS: disagrees with Paddle: max abs diff 0.02" in r.lines
    monkeypatch.setattr(backends.venv_exec, "run", lambda *a, **k: (None, "exited with status 1: boom"))
    [r] = backends.checks(ctx)
    assert r.status == "FAIL" and "boom" in r.detail


def test_a_config_that_does_not_load_is_a_warning_not_a_backend_failure(tmp_path, monkeypatch):
    ctx, d = ctx_and_deploy(tmp_path)
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    res = {"": {"config_error": "ConfigInvalid: unknown key(s) secret_token"}}
    monkeypatch.setattr(backends.venv_exec, "run", lambda *a, **k: (res, ""))
    [r] = backends.checks(ctx)
    assert r.status == "WARN" and "config.yml does not load (ConfigInvalid: unknown key(s) secret_token)" in r.detail


def test_a_deploy_without_runtime_is_left_to_the_other_checks(tmp_path):
    ctx, _ = ctx_and_deploy(tmp_path)
    assert list(backends.checks(ctx)) == []
