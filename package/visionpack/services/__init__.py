"""The service factory: one module per service (``services/<name>.py`` exposing ``SERVICE``, its class
implementing services/protocol.py), picked by ``cfg.service``."""

from __future__ import annotations

import importlib

from ..config import ServiceConfig
from ..errors import ConfigInvalid
from ..inference.engine import EngineFactory, create_engine, serialized
from .protocol import Service, ServiceFactory, check_service


def build_service(cfg: ServiceConfig, engine_factory: EngineFactory | None = None) -> Service:
    """Set up ``services/<cfg.service>.py``'s service with ``engine_factory`` (default: the
    engine each bundle names). Every engine it opens is serialised (one lock per engine,
    inference/engine.py), whichever factory made it: services hold no locks of their own."""
    factory = engine_factory or create_engine
    return check_service(service_class(cfg.service)(cfg, lambda bundle, c: serialized(factory(bundle, c))))


def service_class(name: str) -> ServiceFactory:
    module_name = f"{__package__}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    cls = getattr(module, "SERVICE", None)
    if cls is None:
        raise ConfigInvalid(f"service {name!r} is not available in this release")
    factory: ServiceFactory = cls
    return factory
