"""The HTTP contract of classification, both dialects, every error code with its bad input."""

from __future__ import annotations

import json
import threading

import pytest

from tests.unit.fakes import LABELS, fake_factory, jpeg_b64, png_bytes
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import LicenseError

DEPLOY = "demo-classify"
URL = f"/{DEPLOY}/ImageClassification"


@pytest.fixture
def cfg(tmp_path):
    from tests.unit.fakes import write_cls_bundle

    bundle = write_cls_bundle(tmp_path)
    return ServiceConfig(deploy=DEPLOY, models={"classifier": str(bundle)}, run_dir=str(tmp_path / "run"))


@pytest.fixture
def client(cfg):
    return create_app(cfg, engine_factory=fake_factory, gate=None).test_client()


def post(client, body, url=URL, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(url, data=data, content_type=kw.pop("content_type", "application/json"), **kw)


def test_easydl_classifies_with_default_top_num_6(client):
    r = post(client, {"image": jpeg_b64(color=(250, 10, 10))})
    assert r.status_code == 200
    body = r.get_json()
    assert isinstance(body["log_id"], int) and body["log_id"] < 2**53
    assert len(body["results"]) == 6
    assert set(body["results"][0]) == {"name", "score"}
    assert body["results"][0]["name"] in LABELS
    scores = [x["score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_easydl_top_num_limits_results(client):
    body = post(client, {"image": jpeg_b64(), "top_num": 2}).get_json()
    assert len(body["results"]) == 2


def test_result_depends_on_the_image(client):
    red = post(client, {"image": jpeg_b64(color=(250, 0, 0)), "top_num": 1}).get_json()
    dark = post(client, {"image": jpeg_b64(color=(0, 0, 0)), "top_num": 1}).get_json()
    assert red["results"][0]["name"] != dark["results"][0]["name"]


def test_paddlex_envelope_and_categories(client):
    r = post(client, {"image": jpeg_b64(), "topk": 3}, url="/image-classification")
    body = r.get_json()
    assert r.status_code == 200
    assert body["errorCode"] == 0 and body["errorMsg"] == "Success"
    assert isinstance(body["logId"], str)
    cats = body["result"]["categories"]
    assert len(cats) == 3 and set(cats[0]) == {"id", "name", "score"}
    assert cats[0]["name"] == LABELS[cats[0]["id"]]


def test_paddlex_default_topk_comes_from_the_yml(client):
    body = post(client, {"image": jpeg_b64()}, url="/image-classification").get_json()
    assert len(body["result"]["categories"]) == 5


@pytest.mark.parametrize(
    "body,code",
    [
        ("{not json", 336002),
        (b"\xff\xfe\x00garbage", 336002),
        ("[1, 2]", 336001),
        ({"top_num": 3}, 336006),
        ({"image": ""}, 336006),
        ({"image": 5}, 336001),
        ({"image": "@@@not-base64@@@"}, 336003),
        ({"image": "data:image/jpeg;base64,AAAA"}, 336003),
        ({"image": "R0lGODlhAQABAAAAACw="}, 336005),  # GIF
        ({"image": "A" * (4 * 1024 * 1024 + 8)}, 336004),
        ({"image": None, "top_num": 1}, 336006),
    ],
)
def test_easydl_error_codes(client, body, code):
    r = post(client, body)
    out = r.get_json()
    assert out["error_code"] == code
    assert set(out) == {"log_id", "error_code", "error_msg"}
    assert r.status_code == 200


@pytest.mark.parametrize("top_num", [0, -1, 1.5, "3", True, [1]])
def test_easydl_bad_top_num_is_invalid_argument(client, top_num):
    assert post(client, {"image": jpeg_b64(), "top_num": top_num}).get_json()["error_code"] == 336001


def test_form_encoded_request_is_invalid_argument(client):
    r = client.post(URL, data={"image": jpeg_b64()})
    assert r.get_json()["error_code"] == 336001


def test_tiny_image_is_size_invalid(client):
    import base64

    r = post(client, {"image": base64.b64encode(png_bytes(10, 40)).decode()})
    assert r.get_json()["error_code"] == 336004


def test_body_over_limit_is_size_invalid_without_reading_it(client):
    r = client.post(URL, data=b"x" * (4 * 1024 * 1024 + 200 * 1024), content_type="application/json")
    assert r.get_json()["error_code"] == 336004


@pytest.mark.parametrize(
    "body,status",
    [
        ({}, 422),
        ({"image": jpeg_b64(), "topk": 0}, 422),
        ("nope", 422),
        ({"image": "###"}, 400),
    ],
)
def test_paddlex_errors_use_status_as_error_code(client, body, status):
    r = post(client, body, url="/image-classification")
    out = r.get_json()
    assert r.status_code == status and out["errorCode"] == status
    assert set(out) == {"logId", "errorCode", "errorMsg"}


def test_unknown_deploy_path_is_404_in_an_envelope(client):
    r = post(client, {"image": jpeg_b64()}, url="/other/ImageClassification")
    assert r.status_code == 404 and r.get_json()["error_code"] == 336001


def test_health_ready_metrics(client):
    assert client.get("/health").get_json()["errorMsg"] == "Healthy"
    r = client.get("/ready")
    assert r.status_code == 200 and r.get_json()["ready"] is True
    post(client, {"image": jpeg_b64()})
    post(client, {})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'visionpack_requests_total{route="easydl_classify",code="0"} 1' in text
    assert 'visionpack_requests_total{route="easydl_classify",code="336006"} 1' in text
    assert 'visionpack_request_duration_seconds_count{route="easydl_classify"} 2' in text
    assert "visionpack_requests_in_flight 0" in text
    # One image reached the engine (warm-up does not count), in one batch.
    assert "visionpack_inference_batches_total 1\n" in text
    assert "visionpack_inference_batched_images_total 1\n" in text


def test_requests_over_the_inflight_limit_get_336100_at_once(cfg, tmp_path):
    import dataclasses

    gate_open = threading.Event()
    entered = threading.Event()

    class SlowEngine:
        input_names = ["x"]

        def run(self, feeds):
            entered.set()
            gate_open.wait(10)
            import numpy as np

            return [np.full((feeds["x"].shape[0], 10), 0.1, np.float32)]

    engine = SlowEngine()
    gate_open.set()  # let the start-up warmup inference through
    app = create_app(dataclasses.replace(cfg, max_inflight=1), engine_factory=lambda b, c: engine, gate=None)
    # warmup ran through the engine already; reset the events for the real request
    entered.clear()
    gate_open.clear()
    results = {}

    def first():
        results["first"] = post(app.test_client(), {"image": jpeg_b64()}).get_json()

    t = threading.Thread(target=first)
    t.start()
    assert entered.wait(5)
    second = post(app.test_client(), {"image": jpeg_b64()}).get_json()
    gate_open.set()
    t.join(5)
    assert second["error_code"] == 336100
    assert "results" in results["first"]


class DenyGate:
    def check(self):
        raise LicenseError("expired", "license L-1 expired at 2026-01-01")


def test_license_failure_answers_337000_in_both_dialects(cfg):
    client = create_app(cfg, engine_factory=fake_factory, gate=DenyGate()).test_client()
    r = post(client, {"image": jpeg_b64()})
    assert r.get_json()["error_code"] == 337000 and r.get_json()["error_msg"] == "Auth check failed"
    r = post(client, {"image": jpeg_b64()}, url="/image-classification")
    assert r.status_code == 403 and r.get_json()["errorCode"] == 403
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.get_json()["license"]["reason"] == "expired"


def test_an_engine_crash_is_336000_not_a_traceback(cfg):
    class Boom:
        input_names = ["x"]
        n = 0

        def run(self, feeds):
            Boom.n += 1
            if Boom.n > 1:  # let warmup pass
                raise RuntimeError("kernel exploded")
            import numpy as np

            return [np.full((1, 10), 0.1, np.float32)]

    client = create_app(cfg, engine_factory=lambda b, c: Boom(), gate=None).test_client()
    assert post(client, {"image": jpeg_b64()}).get_json()["error_code"] == 336000
    r = post(client, {"image": jpeg_b64()}, url="/image-classification")
    assert r.status_code == 500 and r.get_json()["errorMsg"] == "Internal server error"


def test_requests_that_arrive_while_the_engine_is_busy_are_batched_each_with_its_own_answer(cfg):
    from tests.unit.fakes import FakeEngine

    colors = [(250, 0, 0), (0, 0, 0), (120, 40, 40)]
    sequential = {}
    plain = create_app(cfg, engine_factory=fake_factory, gate=None).test_client()
    for c in colors:
        sequential[c] = post(plain, {"image": jpeg_b64(color=c), "top_num": 3}).get_json()["results"]

    class HeldEngine(FakeEngine):
        def __init__(self):
            super().__init__()
            self.hold = threading.Event()
            self.hold.set()
            self.entered = threading.Event()

        def run(self, feeds):
            self.entered.set()
            self.hold.wait(10)
            return super().run(feeds)

    engine = HeldEngine()
    app = create_app(cfg, engine_factory=lambda b, c: engine, gate=None)
    batcher = app.extensions["visionpack"].service.batcher
    assert batcher.max_batch == cfg.max_batch > 1
    engine.hold.clear()
    engine.entered.clear()
    engine.calls.clear()
    answers = {}

    def ask(color):
        answers[color] = post(app.test_client(), {"image": jpeg_b64(color=color), "top_num": 3}).get_json()

    first = threading.Thread(target=ask, args=((10, 200, 10),))
    first.start()
    assert engine.entered.wait(5)
    rest = [threading.Thread(target=ask, args=(c,)) for c in colors]
    for t in rest:
        t.start()
    import time

    deadline = time.monotonic() + 5
    while len(batcher._queue) < len(colors):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    engine.hold.set()
    for t in [first, *rest]:
        t.join(5)
    assert [shape[0] for shape in engine.calls] == [1, 3]
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "visionpack_inference_batches_total 2\n" in text
    assert "visionpack_inference_batched_images_total 4\n" in text
    for c in colors:
        assert answers[c]["results"] == sequential[c]


def test_a_model_that_refuses_batches_is_served_one_image_at_a_time(cfg):
    from tests.unit.fakes import FakeEngine

    class SingleOnly(FakeEngine):
        def run(self, feeds):
            if feeds["x"].shape[0] != 1:
                raise RuntimeError("the export has a fixed batch size of 1")
            return super().run(feeds)

    app = create_app(cfg, engine_factory=lambda b, c: SingleOnly(), gate=None)
    assert app.extensions["visionpack"].service.batcher.max_batch == 1
    r = post(app.test_client(), {"image": jpeg_b64()})
    assert r.status_code == 200 and len(r.get_json()["results"]) == 6
