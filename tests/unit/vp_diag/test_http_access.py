"""trouble_shooting's HTTP checks against a deploy whose policies want keys: readiness only (and
how to see the reason) without a key, the detail with $VISIONPACK_API_KEY, and an inference check
that says a key is needed instead of calling the service broken.

The server is the product's Flask app (fake engine) on a real loopback socket (werkzeug).
"""

from __future__ import annotations

import sys
import threading

import pytest
from werkzeug.serving import make_server

from tests.paths import REPO
from tests.unit.fakes import fake_factory, write_cls_bundle
from visionpack.access import store
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import http as diag_http  # noqa: E402
from vp_diag.core import FAIL, PASS, WARN, Context, Deploy  # noqa: E402

DEPLOY = "demo-classify"


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.delenv(diag_http.API_KEY_ENV, raising=False)
    data = tmp_path / "data"
    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(write_cls_bundle(tmp_path))}, data_dir=str(data))
    app = create_app(cfg, engine_factory=fake_factory, gate=None)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    d = Deploy(
        root=tmp_path,
        name=DEPLOY,
        state={"host": "127.0.0.1", "port": srv.server_address[1], "release": "1", "service": "classification"},
    )
    yield {"ctx": ctx, "d": d, "data": data, "runtime": app.extensions["visionpack"]}
    srv.shutdown()
    srv.server_close()


def test_default_policies_need_no_key(site):
    r = diag_http.ready_check(site["ctx"], site["d"])
    assert r.status == PASS and "readiness only" not in r.detail
    assert diag_http.inference_check(site["ctx"], site["d"]).status == PASS


def test_ops_key_policy_gives_readiness_only_without_a_key(site):
    store.set_policy(site["data"], "ops", "key")
    r = diag_http.ready_check(site["ctx"], site["d"])
    assert r.status == PASS and "readiness only" in r.detail


def test_not_ready_without_ops_rights_says_how_to_see_why(site):
    store.set_policy(site["data"], "ops", "key")
    site["runtime"].ready_error = "model not loaded"
    r = diag_http.ready_check(site["ctx"], site["d"])
    assert r.status == FAIL and "shown only with ops rights" in r.detail
    assert any("VISIONPACK_API_KEY=" in f for f in r.fix) and any("apikey create" in f and "ops" in f for f in r.fix)


def test_an_ops_key_in_the_environment_shows_the_reason(site, monkeypatch):
    key, _ = store.create_key(site["data"], ("ops",))
    store.set_policy(site["data"], "ops", "key")
    monkeypatch.setenv(diag_http.API_KEY_ENV, key)
    assert "readiness only" not in diag_http.ready_check(site["ctx"], site["d"]).detail
    site["runtime"].ready_error = "model not loaded"
    r = diag_http.ready_check(site["ctx"], site["d"])
    assert r.status == FAIL and "model not loaded" in r.detail


def test_inference_under_infer_key_is_a_warning_naming_the_fix(site, monkeypatch):
    store.set_policy(site["data"], "infer", "key")
    r = diag_http.inference_check(site["ctx"], site["d"])
    assert r.status == WARN and "error_code 110" in r.detail and "no API key" in r.detail
    assert any("apikey create" in f and "infer" in f for f in r.fix)
    key, _ = store.create_key(site["data"], ("ops",))
    monkeypatch.setenv(diag_http.API_KEY_ENV, key)
    r = diag_http.inference_check(site["ctx"], site["d"])
    assert r.status == WARN and "error_code 6" in r.detail and "VISIONPACK_API_KEY" in r.detail
    key, _ = store.create_key(site["data"], ("infer",))
    monkeypatch.setenv(diag_http.API_KEY_ENV, key)
    assert diag_http.inference_check(site["ctx"], site["d"]).status == PASS
