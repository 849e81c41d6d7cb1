"""The engine seam (inference/engine.py): the bundle picks the engine kind, the factory finds its backend,
every engine it returns runs one call at a time."""

from __future__ import annotations

import json
import threading
import time
import types

import pytest

from tests.unit.fakes import FakeEngine, jpeg_b64, write_cls_bundle
from visionpack.api.app import create_app
from visionpack.bundle import load_bundle
from visionpack.config import ServiceConfig
from visionpack.errors import ModelInvalid
from visionpack.inference import engine as E, paddle_engine

DEPLOY = "demo-cls"
NO_MANIFEST = object()


@pytest.fixture
def fake_kind():
    """A backend registered through the factory, as a plug-in (or issue 16's module) would be."""
    made = []

    def create(bundle, cfg):
        made.append((bundle.path.name, cfg.deploy))
        return FakeEngine()

    E.register("fake", create)
    yield made
    E.unregister("fake")


def bundle_for(tmp_path, engine=NO_MANIFEST):
    b = write_cls_bundle(tmp_path)
    if engine is not NO_MANIFEST:
        (b / "manifest.json").write_text(json.dumps({"schema": 1, "task": "image_classification", "engine": engine}))
    return load_bundle(b)


def test_a_raw_paddlex_export_runs_on_paddle(tmp_path):
    assert E.engine_kind(bundle_for(tmp_path)) == "paddle"
    # The Paddle backend is found by its module name, without importing paddle until it runs.
    assert E.factory_for("paddle") is paddle_engine.create
    assert "paddle" in E.known_kinds()


def test_the_bundle_names_its_engine_and_the_registered_backend_serves_it(tmp_path, fake_kind):
    bundle = bundle_for(tmp_path, "fake")
    engine = E.create_engine(bundle, ServiceConfig(deploy=DEPLOY))
    assert isinstance(engine, E.SerializedEngine) and isinstance(engine.engine, FakeEngine)
    assert engine.input_names == ["x"] and fake_kind == [("fake_cls", DEPLOY)]
    assert "fake" in E.known_kinds()


def test_a_service_gets_the_bundles_engine_with_no_factory_injected(tmp_path, fake_kind):
    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(bundle_for(tmp_path, "fake").path)})
    client = create_app(cfg, gate=None).test_client()
    body = client.post(f"/{DEPLOY}/ImageClassification", json={"image": jpeg_b64()}).get_json()
    assert body["results"] and "error_code" not in body
    assert fake_kind == [("fake_cls", DEPLOY)]  # one engine, opened once, by the factory


def test_an_engine_this_release_lacks_is_a_model_error_naming_the_ones_it_has(tmp_path):
    with pytest.raises(
        ModelInvalid, match=r"engine 'tensorrt' is not in this release \(engines: .*onnxruntime.*openvino.*paddle"
    ):
        E.create_engine(bundle_for(tmp_path, "tensorrt"), ServiceConfig())


@pytest.mark.parametrize("kind", ["../installer/cli", "Paddle", "", "x" * 40, 3, None])
def test_an_engine_kind_that_is_not_a_short_name_is_a_model_error(tmp_path, kind):
    with pytest.raises(ModelInvalid, match="engine"):
        E.engine_kind(bundle_for(tmp_path, kind))


def test_registering_a_bad_kind_is_refused():
    with pytest.raises(ModelInvalid):
        E.register("Bad Kind", lambda b, c: FakeEngine())


def test_a_backend_whose_library_is_missing_says_so(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")

    monkeypatch.setattr(E.importlib, "import_module", missing)
    with pytest.raises(ModelInvalid, match="engine 'onnxruntime' cannot load: No module named 'onnxruntime'"):
        E.factory_for("onnxruntime")


def test_a_backend_module_without_create_is_a_model_error(monkeypatch):
    monkeypatch.setattr(E.importlib, "import_module", lambda name: types.SimpleNamespace())
    with pytest.raises(ModelInvalid, match="has no create"):
        E.factory_for("half")


def test_serialized_engines_run_one_call_at_a_time_and_read_through():
    class Slow:
        input_names = ["x"]
        output_names = ["y"]
        onednn = True

        def __init__(self):
            self.inside, self.most = 0, 0

        def run(self, feeds):
            self.inside += 1
            self.most = max(self.most, self.inside)
            time.sleep(0.01)
            self.inside -= 1
            return [feeds["x"]]

    slow = Slow()
    engine = E.serialized(slow)
    threads = [threading.Thread(target=engine.run, args=({"x": i},)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slow.most == 1
    assert engine.run({"x": 7}) == [7] and engine.output_names == ["y"] and engine.onednn is True
    assert E.serialized(engine) is engine  # one lock, not one per wrapping


def test_serializing_something_that_is_not_an_engine_is_refused():
    with pytest.raises(TypeError, match="is not an Engine"):
        E.serialized(object())
