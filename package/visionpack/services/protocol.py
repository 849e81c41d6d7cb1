"""The ``Service`` protocol every service implements, and ``Operation``, one wire operation of a service.

The shape of LitServe's ``LitAPI``: *setup* once per gunicorn worker, after the fork (gunicorn
runs without ``--preload``): a service class is called as ``SERVICE(cfg, engine_factory)``
(:data:`ServiceFactory`) and loads its bundles, opens their engines and checks its options
there; ``warmup`` then proves the models answer; and each request is ``decode`` ->
``predict`` -> ``encode``. A service has several wire operations (two dialects, and the face
service's gallery verbs): :meth:`Service.operations` names each with its decode/encode pair,
and the routes (api/routes_<service>.py) map paths to those names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Protocol, cast, runtime_checkable

from ..config import ServiceConfig
from ..inference.engine import EngineFactory

DIALECTS = ("easydl", "paddlex")


@dataclass(frozen=True)
class Operation:
    """One wire operation: ``decode`` checks a JSON body into a request for ``predict``,
    ``encode`` shapes its result; ``dialect`` picks the envelope (api/envelopes.py)."""

    dialect: str
    decode: Callable[[dict[str, Any]], Any]
    encode: Callable[[Any], dict[str, Any]]

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"operation dialect must be one of {DIALECTS}, got {self.dialect!r}")


@runtime_checkable
class Service(Protocol):
    """A set-up service of one worker (construct it with :data:`ServiceFactory`)."""

    kind: str

    def operations(self) -> Mapping[str, Operation]:
        """Operation name (``<dialect>.<verb>``, e.g. ``paddlex.infer``) -> decode/encode pair."""

    def predict(self, request: Any) -> Any:
        """Run one decoded request (any operation's); may be called from several threads."""

    def warmup(self) -> None:
        """One inference of every model at start, so /ready means 'answers requests'."""


# The setup step: a service class, called once per worker with the deploy's config and the
# factory its engines come from (services/<name>.py exposes its class as ``SERVICE``).
ServiceFactory = Callable[[ServiceConfig, EngineFactory], Service]

MEMBERS = ("operations", "predict", "warmup")


def check_service(obj: object) -> Service:
    """``obj`` as a Service, or TypeError naming what it lacks (a programming error, caught at start)."""
    missing = [m for m in MEMBERS if not callable(getattr(obj, m, None))]
    if not isinstance(getattr(obj, "kind", None), str):
        missing.append("kind")
    if missing:
        raise TypeError(f"{type(obj).__name__} is not a Service (services/protocol.py): it lacks {', '.join(missing)}")
    return cast(Service, obj)
