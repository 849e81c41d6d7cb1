"""API keys at the HTTP layer (Flask test client): 110 / 6 in both envelopes, the three ways to
send a key, /ready's summary vs detail, /metrics, /health, and the face gallery's scope.

A non-loopback client is simulated with ``environ_base={"REMOTE_ADDR": "10.1.2.3"}`` (the real
front puts the TCP peer there); the real-socket tests are tests/integration/test_access_gunicorn.py.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.unit.face_fakes import RED, b64, face_config, factory, picture
from tests.unit.fakes import fake_factory, jpeg_b64, write_cls_bundle
from visionpack.access import store
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import LicenseError

DEPLOY = "demo-classify"
EASYDL = f"/{DEPLOY}/ImageClassification"
PADDLEX = "/image-classification"
REMOTE = {"REMOTE_ADDR": "10.1.2.3"}
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def app(tmp_path, data):
    cfg = ServiceConfig(
        deploy=DEPLOY,
        models={"classifier": str(write_cls_bundle(tmp_path))},
        run_dir=str(tmp_path / "run"),
        data_dir=str(data),
    )
    return create_app(cfg, engine_factory=fake_factory, gate=None)


@pytest.fixture
def client(app):
    return app.test_client()


def classify(client, url=EASYDL, env=REMOTE, headers=None, query="", body=None):
    data = json.dumps(body if body is not None else {"image": jpeg_b64(), "top_num": 1})
    return client.post(url + query, data=data, content_type="application/json", headers=headers or {}, environ_base=env)


def test_inference_is_open_by_default_from_anywhere(client):
    assert classify(client).status_code == 200
    assert "results" in classify(client).get_json()


def test_easydl_110_without_a_key_under_policy_key(client, data):
    store.set_policy(data, "infer", "key")
    r = classify(client)
    body = r.get_json()
    assert r.status_code == 401
    assert set(body) == {"log_id", "error_code", "error_msg"}
    assert (body["error_code"], body["error_msg"]) == (110, "Access token invalid or no longer valid")


def test_paddlex_401_without_a_key_under_policy_key(client, data):
    store.set_policy(data, "infer", "key")
    r = classify(client, PADDLEX)
    body = r.get_json()
    assert r.status_code == 401 and body["errorCode"] == 401 and isinstance(body["logId"], str)
    assert "'infer' scope" in body["errorMsg"] and "result" not in body


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "access_token"])
def test_each_way_to_send_a_key_works(client, data, how):
    key, _ = store.create_key(data, ("infer",))
    store.set_policy(data, "infer", "key")
    headers = {"bearer": {"Authorization": f"Bearer {key}"}, "x-api-key": {"X-API-Key": key}}.get(how)
    query = f"?access_token={key}" if how == "access_token" else ""
    assert classify(client, headers=headers, query=query).status_code == 200
    assert classify(client, PADDLEX, headers=headers, query=query).get_json()["errorCode"] == 0


def test_unknown_and_revoked_keys_get_110_in_both_envelopes(client, data):
    key, rec = store.create_key(data, ("infer",))
    store.set_policy(data, "infer", "key")
    for bad in ("vpk_guess", key):
        if bad == key:
            store.revoke_key(data, rec.id)
        r = classify(client, headers={"X-API-Key": bad})
        assert (r.status_code, r.get_json()["error_code"]) == (401, 110)
        r = classify(client, PADDLEX, headers={"X-API-Key": bad})
        assert (r.status_code, r.get_json()["errorCode"]) == (401, 401)
        assert r.get_json()["errorMsg"] == "Access token invalid or no longer valid"


def test_a_key_without_the_scope_gets_6_and_403(client, data):
    key, _ = store.create_key(data, ("gallery", "ops"))
    store.set_policy(data, "infer", "key")
    r = classify(client, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    assert (r.get_json()["error_code"], r.get_json()["error_msg"]) == (6, "No permission to access data")
    r = classify(client, PADDLEX, headers={"Authorization": f"Bearer {key}"})
    assert (r.status_code, r.get_json()["errorCode"]) == (403, 403)


def test_loopback_policy_lets_this_machine_in_and_others_with_a_key(client, data):
    store.set_policy(data, "infer", "loopback")
    assert classify(client, env=LOCAL).status_code == 200
    assert classify(client, env={"REMOTE_ADDR": "::1"}).status_code == 200
    assert classify(client).status_code == 401
    key, _ = store.create_key(data, ("infer",))
    assert classify(client, headers={"X-API-Key": key}).status_code == 200


def test_open_checks_no_credential(client, data):
    store.set_policy(data, "infer", "open")
    assert classify(client, headers={"X-API-Key": "vpk_wrong"}).status_code == 200


def test_no_key_beats_a_broken_body(client, data):
    store.set_policy(data, "infer", "key")
    r = client.post(EASYDL, data="{not json", content_type="application/json", environ_base=REMOTE)
    assert r.get_json()["error_code"] == 110


class CountingGate:
    def __init__(self):
        self.calls = 0

    def check(self):
        self.calls += 1
        raise LicenseError("expired", "license expired")


def test_refusal_comes_before_the_license_gate_and_the_slots(tmp_path, data):
    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(write_cls_bundle(tmp_path))}, data_dir=str(data))
    gate = CountingGate()
    app = create_app(cfg, engine_factory=fake_factory, gate=gate)
    store.set_policy(data, "infer", "key")
    r = classify(app.test_client())
    assert r.get_json()["error_code"] == 110 and gate.calls == 0
    runtime = app.extensions["visionpack"]
    assert runtime.slots.acquire(blocking=False)  # all slots still free
    runtime.slots.release()
    key, _ = store.create_key(data, ("infer",))
    assert classify(app.test_client(), headers={"X-API-Key": key}).get_json()["error_code"] == 337000
    assert gate.calls == 1


def test_refusals_are_logged_with_log_id_peer_and_key_id_never_the_key(client, data, caplog):
    key, rec = store.create_key(data, ("ops",), "monitoring")
    store.set_policy(data, "infer", "key")
    with caplog.at_level(logging.INFO, "visionpack"):
        body = classify(client, headers={"X-API-Key": key}).get_json()
        classify(client, query="?access_token=vpk_guessed")
    lines = [
        r.getMessage()
        for r in caplog.records
        if "no-permission" in r.getMessage() or "access-token-invalid" in r.getMessage()
    ]
    assert len(lines) == 2
    assert f"log_id={body['log_id']}" in lines[0] and "route=easydl_classify" in lines[0]
    assert "peer=10.1.2.3" in lines[0] and f"key_id={rec.id}" in lines[0] and "reason=scope-infer" in lines[0]
    assert "reason=unknown" in lines[1] and "key_id=-" in lines[1]
    assert key not in caplog.text and "vpk_guessed" not in caplog.text


def test_metrics_count_refusals_by_code(client, data):
    store.set_policy(data, "infer", "key")
    classify(client)
    text = client.get("/metrics", environ_base=LOCAL).get_data(as_text=True)
    assert 'code="110"' in text


# --- /ready, /metrics, /health --------------------------------------------------------------


def test_ready_detail_for_loopback_by_default(client):
    r = client.get("/ready", environ_base=LOCAL)
    body = r.get_json()
    assert r.status_code == 200 and body["ready"] is True and body["deploy"] == DEPLOY and "models" in body


def test_ready_summary_for_others(client):
    r = client.get("/ready", environ_base=REMOTE)
    assert (r.status_code, r.get_json()) == (200, {"ready": True})
    r = client.get("/ready", environ_base=REMOTE, headers={"X-API-Key": "vpk_bad"})
    assert (r.status_code, r.get_json()) == (200, {"ready": True})


def test_ready_detail_with_an_ops_key_summary_with_another(client, data):
    ops, _ = store.create_key(data, ("ops",))
    infer, _ = store.create_key(data, ("infer",))
    assert client.get("/ready", environ_base=REMOTE, headers={"X-API-Key": ops}).get_json()["deploy"] == DEPLOY
    assert client.get("/ready", environ_base=REMOTE, headers={"X-API-Key": infer}).get_json() == {"ready": True}


def test_ready_summary_keeps_503_when_not_ready(app, data):
    app.extensions["visionpack"].ready_error = "model not loaded"
    store.set_policy(data, "ops", "key")
    r = app.test_client().get("/ready", environ_base=LOCAL)
    assert (r.status_code, r.get_json()) == (503, {"ready": False})


def test_metrics_need_ops(client, data):
    assert client.get("/metrics", environ_base=LOCAL).status_code == 200
    r = client.get("/metrics", environ_base=REMOTE)
    body = r.get_json()
    assert r.status_code == 401 and body["error_code"] == 110 and body["errorCode"] == 401
    assert body["logId"] == str(body["log_id"])
    infer, _ = store.create_key(data, ("infer",))
    r = client.get("/metrics", environ_base=REMOTE, headers={"Authorization": f"Bearer {infer}"})
    assert (r.status_code, r.get_json()["error_code"]) == (403, 6)
    ops, _ = store.create_key(data, ("ops",))
    r = client.get("/metrics", environ_base=REMOTE, headers={"Authorization": f"Bearer {ops}"})
    assert r.status_code == 200 and r.mimetype == "text/plain"


def test_health_is_always_open(client, data):
    for scope in ("infer", "gallery", "ops"):
        store.set_policy(data, scope, "key")
    r = client.get("/health", environ_base=REMOTE)
    assert r.status_code == 200 and r.get_json()["errorCode"] == 0


# --- the face service: gallery routes are the gallery scope, recognition is inference ----


@pytest.fixture
def face(tmp_path):
    cfg = face_config(tmp_path)
    return create_app(cfg, engine_factory=factory(), gate=None).test_client(), tmp_path / "data"


GALLERY_CALLS = [
    ("/face-recognition-index-build", {"imageLabelPairs": []}),
    ("/face-recognition-index-add", {"imageLabelPairs": [], "indexKey": "k"}),
    ("/face-recognition-index-remove", {"ids": [1], "indexKey": "k"}),
    ("/demo-face/FaceGallery/add", {"image": "x", "user_id": "u"}),
    ("/demo-face/FaceGallery/remove", {"user_id": "u"}),
    ("/demo-face/FaceGallery/list", {}),
    ("/face-recognition-index-delete", {"indexKey": "k"}),
    ("/demo-face/FaceGallery/group/delete", {"group_id": "g"}),
]


@pytest.mark.parametrize("url, body", GALLERY_CALLS)
def test_gallery_routes_answer_only_loopback_by_default(face, url, body):
    client, _ = face
    r = client.post(url, data=json.dumps(body), content_type="application/json", environ_base=REMOTE)
    doc = r.get_json()
    assert r.status_code == 401
    assert doc.get("error_code", doc.get("errorCode")) in (110, 401)
    local = client.post(url, data=json.dumps(body), content_type="application/json", environ_base=LOCAL)
    assert local.status_code != 401


@pytest.mark.parametrize("url, body", GALLERY_CALLS)
def test_gallery_routes_take_a_gallery_key_not_an_infer_key(face, url, body):
    client, data = face
    infer, _ = store.create_key(data, ("infer",))
    gallery, _ = store.create_key(data, ("gallery",))
    r = client.post(
        url, data=json.dumps(body), content_type="application/json", environ_base=REMOTE, headers={"X-API-Key": infer}
    )
    assert r.status_code == 403
    r = client.post(
        url, data=json.dumps(body), content_type="application/json", environ_base=REMOTE, headers={"X-API-Key": gallery}
    )
    assert r.status_code not in (401, 403)


def test_face_recognition_is_inference(face):
    client, data = face
    image = b64(picture(RED))
    r = client.post(
        "/face-recognition-infer",
        data=json.dumps({"image": image, "indexKey": "none"}),
        content_type="application/json",
        environ_base=REMOTE,
    )
    assert r.status_code not in (401, 403)
    r = client.post(
        "/demo-face/FaceRecognition",
        data=json.dumps({"image": image}),
        content_type="application/json",
        environ_base=REMOTE,
    )
    assert r.status_code == 200 and r.get_json().get("error_code") not in (110, 6)


def test_every_face_route_is_gallery_unless_listed_as_inference(face):
    """Fail closed: a face route added later (e.g. index deletion) is gallery-scoped by default."""
    from visionpack.access.scopes import INFER_ROUTES

    client, _ = face
    rules = [r for r in client.application.url_map.iter_rules() if "POST" in (r.methods or ())]
    assert len(rules) >= 8
    for rule in rules:
        r = client.post(rule.rule, data="{}", content_type="application/json", environ_base=REMOTE)
        refused = r.status_code == 401
        assert refused == (rule.endpoint.split(".")[-1] not in INFER_ROUTES), rule.rule
