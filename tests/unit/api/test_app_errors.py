"""Answers given outside a route's own decode: unknown paths, wrong methods, oversized bodies,
image URLs; every one an envelope with a log id, never Werkzeug's HTML."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tests.unit.fakes import fake_factory, jpeg_b64, write_cls_bundle
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig

DEPLOY = "demo-classify"
EASYDL = f"/{DEPLOY}/ImageClassification"
PADDLEX = "/image-classification"


@pytest.fixture
def app(tmp_path):
    cfg = ServiceConfig(
        deploy=DEPLOY, models={"classifier": str(write_cls_bundle(tmp_path))}, run_dir=str(tmp_path / "run")
    )
    return create_app(cfg, engine_factory=fake_factory, gate=None)


@pytest.fixture
def client(app):
    return app.test_client()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    """Records of the visionpack loggers, however their propagation is configured."""
    handler = _Records()
    logger = logging.getLogger("visionpack")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def both_dialects(r, status, code=336001):
    assert r.status_code == status and r.mimetype == "application/json", r.data[:200]
    body = r.get_json()
    assert set(body) == {"log_id", "error_code", "error_msg", "logId", "errorCode", "errorMsg"}
    assert isinstance(body["log_id"], int) and 0 < body["log_id"] < 2**53
    assert body["logId"] == str(body["log_id"])
    assert body["error_code"] == code and body["errorCode"] == status
    return body


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/other/ImageClassification"),
        ("GET", "/nope"),
        ("POST", "/"),
        ("DELETE", "/x/y/z"),
        ("POST", "/" + "a" * 5000),
    ],
)
def test_unknown_paths_answer_404_in_both_dialects(client, method, path, records):
    r = client.open(path, method=method, data="{}", content_type="application/json")
    body = both_dialects(r, 404)
    assert "Not Found" in body["errorMsg"] and len(body["errorMsg"]) < 120  # the path only as a short prefix
    # One log line that carries the same id.
    assert [rec for rec in records if f"log_id={body['log_id']} " in rec.getMessage()]


@pytest.mark.parametrize("method,path", [("GET", EASYDL), ("PUT", PADDLEX), ("POST", "/health"), ("DELETE", "/ready")])
def test_wrong_methods_answer_405_with_allow(client, method, path):
    r = client.open(path, method=method)
    body = both_dialects(r, 405)
    assert "Method Not Allowed" in body["errorMsg"]
    assert r.headers["Allow"]


def test_a_body_without_length_past_the_limit_is_336004_in_the_route_dialect(client):
    big = b'{"image": "' + b"A" * (4 * 1024 * 1024 + 100 * 1024) + b'"}'
    kw = {
        "input_stream": io.BytesIO(big),
        "content_type": "application/json",
        "environ_overrides": {"wsgi.input_terminated": True},
    }  # as gunicorn marks a chunked body
    r = client.post(EASYDL, **kw)
    assert r.status_code == 200 and r.get_json()["error_code"] == 336004 and "log_id" in r.get_json()
    kw["input_stream"] = io.BytesIO(big)
    r = client.post(PADDLEX, **kw)
    assert r.status_code == 400 and r.get_json()["errorCode"] == 400 and r.get_json()["logId"]


def test_the_front_s_too_large_mark_is_336004_without_reading(client):
    r = client.post(
        EASYDL, data=b"", content_type="application/json", environ_overrides={"visionpack.body_too_large": 9_000_000}
    )
    out = r.get_json()
    assert out["error_code"] == 336004 and isinstance(out["log_id"], int)


def test_werkzeugs_413_handler_answers_336004_with_a_log_id(app, tmp_path):
    # No route reads a body outside routes.handle today; a probe route stands for any that will.
    from flask import request

    def reader():
        request.get_data()
        return "read"

    app.add_url_rule("/probe", "probe", reader, methods=["POST"])
    app.add_url_rule("/paddlex-probe", "paddlex_probe", reader, methods=["POST"])
    app.add_url_rule("/easydl-probe", "easydl_probe", reader, methods=["POST"])
    client = app.test_client()
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    r = client.post("/probe", data=big)
    body = both_dialects(r, 400, code=336004)
    assert body["error_msg"] == "输入文件大小不合法"
    r = client.post("/paddlex-probe", data=big)
    assert r.status_code == 400 and set(r.get_json()) == {"logId", "errorCode", "errorMsg"}
    r = client.post("/easydl-probe", data=big)
    assert r.status_code == 200 and set(r.get_json()) == {"log_id", "error_code", "error_msg"}
    assert r.get_json()["error_code"] == 336004


def test_an_exception_outside_handle_is_336000_without_internals(app, records):
    def broken():
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", "broken", broken)
    r = app.test_client().get("/broken")
    body = both_dialects(r, 500, code=336000)
    assert "secret" not in json.dumps(body)
    # The trace goes to the log, under the answer's log id.
    logged = [rec for rec in records if f"log_id={body['log_id']} " in rec.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert str(logged[0].exc_info[1]) == "secret internals"


@pytest.mark.parametrize(
    "url", ["http://192.0.2.1/cat.jpg", "https://example.com/a.png", "ftp://host/x.bmp", "HTTP://EXAMPLE.COM/A.JPG"]
)
def test_image_urls_are_422_and_336001_as_the_readme_says(client, url):
    r = client.post(PADDLEX, json={"image": url})
    assert r.status_code == 422 and r.get_json()["errorCode"] == 422 and "URL" in r.get_json()["errorMsg"]
    r = client.post(EASYDL, json={"image": url})
    assert r.get_json()["error_code"] == 336001


def test_a_200_kb_invalid_field_is_never_echoed(client):
    junk = "Z" * 200_000
    r = client.post(PADDLEX, json={"image": jpeg_b64(), "topk": junk})
    assert r.status_code == 422 and len(r.data) < 400 and "Z" * 50 not in r.get_data(as_text=True)
    r = client.post(EASYDL, json={"image": jpeg_b64(), "top_num": [junk] * 10})
    assert r.get_json()["error_code"] == 336001 and len(r.data) < 200


def test_the_envelope_caps_any_detail():
    from visionpack.api import envelopes as E
    from visionpack.errors import InvalidArgument

    body, _ = E.paddlex_error("id", InvalidArgument("d" * 10_000))
    assert len(body["errorMsg"]) <= E.MAX_DETAIL_CHARS + 1
    assert len(E.front_error(InvalidArgument("d" * 10_000))["errorMsg"]) <= E.MAX_DETAIL_CHARS + 1
