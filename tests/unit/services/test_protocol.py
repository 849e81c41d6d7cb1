"""The service seam (services/protocol.py, services/__init__.py, api/routes.py operation_blueprint): what the
app needs of a service, and how it refuses one that is not."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tests.unit.fakes import fake_factory, jpeg_b64, write_cls_bundle
from visionpack.api.app import create_app
from visionpack.api.routes import operation_blueprint
from visionpack.config import ServiceConfig
from visionpack.errors import ConfigInvalid, InvalidArgument
from visionpack.inference.engine import SerializedEngine
from visionpack.services import build_service
from visionpack.services.protocol import Operation, Service, check_service

DEPLOY = "demo-cls"


class EchoService:
    """The least a service is: operations, predict, warmup, kind. No model at all."""

    kind = "classification"

    def __init__(self, cfg=None, engine_factory=None):
        self.seen = []

    def operations(self):
        return {
            "easydl.classify": Operation("easydl", self.decode, lambda n: {"results": [{"name": "n", "score": n}]}),
            "paddlex.classify": Operation("paddlex", self.decode, lambda n: {"categories": [{"id": n}]}),
        }

    def decode(self, body):
        if "n" not in body:
            raise InvalidArgument("'n' is required")
        return body["n"]

    def predict(self, request):
        self.seen.append(request)
        return request * 2

    def warmup(self):
        pass


def test_any_object_with_the_protocol_is_served_through_the_routes():
    svc = EchoService()
    client = create_app(ServiceConfig(deploy=DEPLOY), service=svc, gate=None).test_client()
    easy = client.post(f"/{DEPLOY}/ImageClassification", json={"n": 2}).get_json()
    assert easy["results"] == [{"name": "n", "score": 4}]
    pdx = client.post("/image-classification", json={"n": 5}).get_json()
    assert pdx["result"] == {"categories": [{"id": 10}]} and pdx["errorCode"] == 0
    assert client.post("/image-classification", json={}).get_json()["errorCode"] == 422
    assert svc.seen == [2, 5] and isinstance(svc, Service)


class Missing:
    kind = "classification"

    def predict(self, request):
        return request


def test_a_service_that_does_not_implement_the_protocol_is_refused_naming_what_it_lacks():
    with pytest.raises(TypeError, match=r"Missing is not a Service .*lacks operations, warmup$"):
        check_service(Missing())
    with pytest.raises(TypeError, match="lacks operations, predict, warmup, kind"):
        create_app(ServiceConfig(deploy=DEPLOY), service=object(), gate=None)


def test_a_route_whose_operation_the_service_lacks_fails_at_start():
    class NoPaddleX(EchoService):
        def operations(self):
            return {k: v for k, v in super().operations().items() if k != "paddlex.classify"}

    with pytest.raises(
        TypeError, match=r"paddlex_classify needs operation 'paddlex.classify'; .* has \['easydl.classify'\]"
    ):
        create_app(ServiceConfig(deploy=DEPLOY), service=NoPaddleX(), gate=None)


def test_a_route_named_for_the_other_dialect_is_refused():
    with pytest.raises(TypeError, match="serves a paddlex operation: name it paddlex_"):
        operation_blueprint("x", EchoService(), [("easydl_oops", "/oops", "paddlex.classify")], DEPLOY)


def test_an_operation_of_an_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="dialect"):
        Operation("ultralytics2", lambda b: b, lambda r: r)


def test_build_service_sets_up_the_configured_service_with_serialised_engines(tmp_path):
    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(write_cls_bundle(tmp_path))})
    svc = build_service(cfg, fake_factory)
    assert svc.kind == "classification" and set(svc.operations()) == {"easydl.classify", "paddlex.classify"}
    assert isinstance(svc.engine, SerializedEngine)  # whichever factory made it
    assert np.isclose(
        sum(
            c.score
            for c in svc.predict(svc.operations()["easydl.classify"].decode({"image": jpeg_b64(), "top_num": 10}))
        ),
        1.0,
        atol=1e-4,
    )


def test_a_service_module_without_a_service_class_is_not_available():
    with pytest.raises(ConfigInvalid, match="service 'fields' is not available"):
        build_service(ServiceConfig(service="fields"))
    with pytest.raises(ConfigInvalid, match="service 'nothing_here' is not available"):
        build_service(ServiceConfig(service="nothing_here"))


def test_a_service_class_that_makes_no_service_is_refused(monkeypatch):
    module = types.ModuleType("visionpack.services.halfdone")
    module.SERVICE = lambda cfg, engines: Missing()
    monkeypatch.setitem(sys.modules, "visionpack.services.halfdone", module)
    with pytest.raises(TypeError, match="Missing is not a Service"):
        build_service(ServiceConfig(service="halfdone"))


def test_every_shipped_service_names_the_operations_its_routes_serve():
    import importlib

    for name in ("classification", "keypoint", "face"):
        routes = importlib.import_module(f"visionpack.api.routes_{name}").ROUTES
        cls = importlib.import_module(f"visionpack.services.{name}").SERVICE
        # operations() needs only the decoders and encoders: ask it of an instance without models
        ops = cls.operations(object.__new__(cls))
        assert {op for _, _, op in routes} == set(ops), name
        for endpoint, _, op in routes:
            assert endpoint.startswith(ops[op].dialect + "_"), endpoint
