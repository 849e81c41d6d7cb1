"""Which backend runs a model (inference/engine.py backend_for, inference/formats.py): the config's
choice per model and per deploy, the release's measured choice, the bundle's own format; refusals
before a runtime is imported; engines' concurrency and run timing."""

from __future__ import annotations

import re
import threading

import pytest

from tests.unit.fakes import FakeEngine, jpeg_b64, write_cls_bundle
from visionpack.api.app import create_app
from visionpack.bundle import load_bundle
from visionpack.config import ServiceConfig
from visionpack.errors import ModelInvalid
from visionpack.inference import engine as E, formats

DEPLOY = "demo-cls"


@pytest.fixture
def bundles(tmp_path):
    """A Paddle+ONNX bundle, a Paddle-only one (with the reason), an ONNX-only one."""
    both = write_cls_bundle(tmp_path / "both")
    (both / "inference.onnx").write_bytes(b"onnx")
    paddle_only = write_cls_bundle(tmp_path / "paddle")
    (paddle_only / "manifest.json").write_text('{"schema": 1, "onnx": {"unavailable": "split on a dynamic batch"}}')
    onnx_only = write_cls_bundle(tmp_path / "onnx")
    for name in ("inference.json", "inference.pdiparams"):
        (onnx_only / name).unlink()
    (onnx_only / "model.onnx").write_bytes(b"onnx")
    return {k: load_bundle(v) for k, v in (("both", both), ("paddle", paddle_only), ("onnx", onnx_only))}


@pytest.fixture
def fakes():
    """Every backend registered as a fake that records what it opened (no runtime imported)."""
    made: list[tuple[str, str]] = []

    def factory(kind):
        def create(bundle, cfg):
            made.append((kind, bundle.path.parent.name))
            engine = FakeEngine()
            engine.backend = kind
            return engine

        return create

    for kind in formats.FORMAT_OF:
        E.register(kind, factory(kind))
    yield made
    for kind in formats.FORMAT_OF:
        E.unregister(kind)


def cfg_for(bundle, **kw):
    return ServiceConfig(deploy=DEPLOY, models={"classifier": str(bundle.path)}, **kw)


def test_without_a_choice_a_bundle_runs_on_its_own_format(bundles):
    assert E.backend_for(bundles["both"], cfg_for(bundles["both"])) == "paddle"
    assert E.backend_for(bundles["onnx"], cfg_for(bundles["onnx"])) == "onnxruntime"


def test_the_release_measured_choice_is_used_under_auto(bundles):
    b = bundles["both"]
    tuning = {"classifier": {"backend": "openvino", "candidates": {}}}
    assert E.backend_for(b, cfg_for(b, tuning=tuning)) == "openvino"
    # another role's record is not this model's
    assert E.backend_for(b, cfg_for(b, tuning={"detector": {"backend": "openvino"}})) == "paddle"


def test_the_deploy_choice_beats_the_measured_one_and_the_model_choice_beats_both(bundles):
    b = bundles["both"]
    tuning = {"classifier": {"backend": "openvino"}}
    assert E.backend_for(b, cfg_for(b, tuning=tuning, backend="onnxruntime")) == "onnxruntime"
    picked = cfg_for(b, tuning=tuning, backend="onnxruntime", model_backends={"classifier": "paddle"})
    assert E.backend_for(b, picked) == "paddle"
    assert E.backend_for(b, cfg_for(b, backend="auto", model_backends={"classifier": "auto"})) == "paddle"


def test_the_factory_opens_the_chosen_backend_and_labels_the_engine(bundles, fakes):
    b = bundles["both"]
    engine = E.create_engine(b, cfg_for(b, backend="openvino"))
    assert fakes == [("openvino", "both")]
    assert isinstance(engine, E.SerializedEngine) and engine.backend == "openvino"


def test_a_backend_the_bundle_has_no_format_for_is_refused_before_its_runtime_loads(bundles, monkeypatch):
    def never(kind):
        raise AssertionError(f"the {kind} runtime must not be imported")

    monkeypatch.setattr(E, "factory_for", never)
    with pytest.raises(ModelInvalid, match=r"backend onnxruntime runs the onnx format; bundle fake_cls holds paddle"):
        E.create_engine(bundles["paddle"], cfg_for(bundles["paddle"], backend="onnxruntime"))
    with pytest.raises(ModelInvalid, match="no ONNX rendition: split on a dynamic batch"):
        E.create_engine(bundles["paddle"], cfg_for(bundles["paddle"], backend="openvino"))
    with pytest.raises(ModelInvalid, match="backend paddle runs the paddle format; bundle fake_cls holds onnx"):
        E.create_engine(bundles["onnx"], cfg_for(bundles["onnx"], backend="paddle"))


def test_formats_name_the_file_each_backend_runs(bundles):
    assert formats.runnable(bundles["both"]) == ["paddle", "onnxruntime", "openvino"]
    assert formats.runnable(bundles["onnx"]) == ["onnxruntime", "openvino"]
    assert formats.model_file(bundles["onnx"], "openvino").name == "model.onnx"
    with pytest.raises(ModelInvalid, match="choose another backend"):
        formats.model_file(bundles["paddle"], "onnxruntime")


def test_an_engine_with_parallel_requests_runs_that_many_at_once():
    inside, peak, gate = [0], [0], threading.Barrier(2, timeout=10)
    lock = threading.Lock()

    class Parallel(FakeEngine):
        concurrency = 2

        def run(self, feeds):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            gate.wait()  # both runs must be inside at once, or this times out
            with lock:
                inside[0] -= 1
            return [feeds["x"]]

    engine = E.serialized(Parallel())
    threads = [threading.Thread(target=engine.run, args=({"x": 1},)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert peak[0] == 2


def test_each_run_reports_its_seconds():
    engine = E.serialized(FakeEngine())
    seen: list[float] = []
    engine.on_run = seen.append
    import numpy as np

    engine.run({"x": np.zeros((1, 3, 4, 4), np.float32)})
    assert len(seen) == 1 and seen[0] >= 0.0


def test_ready_shows_which_backend_runs_each_model_and_metrics_label_inference_by_backend(bundles, fakes):
    b = bundles["both"]
    tuning = {
        "classifier": {
            "backend": "onnxruntime",
            "candidates": {
                "onnxruntime": {"ok": True, "p50_ms": 7.5, "max_abs_diff": 1e-7},
                "openvino": {"ok": False, "why": "disagrees with Paddle: max abs diff 0.02"},
            },
        }
    }
    client = create_app(cfg_for(b, tuning=tuning), gate=None).test_client()
    body = client.post(f"/{DEPLOY}/ImageClassification", json={"image": jpeg_b64()}).get_json()
    assert body["results"]
    ready = client.get("/ready").get_json()
    assert ready["backends"]["classifier"]["backend"] == "onnxruntime"
    assert ready["tuning"]["classifier"] == {
        "chosen": "onnxruntime",
        "measured": {
            "onnxruntime": {"p50_ms": 7.5, "max_abs_diff": 1e-7},
            "openvino": {"why": "disagrees with Paddle: max abs diff 0.02"},
        },
    }
    text = client.get("/metrics").get_data(as_text=True)
    # the warm-up's runs and the request's, labelled with the backend and the model
    runs = re.search(
        r'visionpack_inference_duration_seconds_count\{backend="onnxruntime",model="fake_cls"\} (\d+)', text
    )
    assert runs and int(runs.group(1)) >= 2


def test_the_factory_opens_a_model_with_its_own_settings(bundles, fakes, monkeypatch):
    seen = []
    b = bundles["both"]
    E.register(
        "openvino", lambda bundle, cfg: seen.append((cfg.threads_per_worker, cfg.openvino_streams)) or FakeEngine()
    )
    cfg = cfg_for(b, backend="openvino", threads_per_worker=2, model_options={"classifier": {"openvino_streams": 2}})
    E.create_engine(b, cfg)
    assert seen == [(2, 2)]
