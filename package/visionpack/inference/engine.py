"""The engine seam: the ``Engine`` protocol every inference backend implements, and the one factory that
picks the backend a bundle needs.

A backend is one module, ``inference/<kind>_engine.py``, exposing ``create(bundle, cfg) ->
Engine``: ``paddle``, ``onnxruntime``, ``openvino``. Which one runs a model is :func:`backend_for`'s
answer (the config's choice for that model, else the one install/upgrade measured, else the
bundle's own format), and a worker imports only the backends its models use, so only that
backend's module imports its runtime library (``paddle_engine.py`` is the only importer of
``paddle``). :func:`register` puts a factory in front of the modules (tests, plug-ins).

Thread safety is settled here, once: every engine the factory returns serialises its runs
with a lock of its own (an engine with parallel infer requests, OpenVINO's streams, says how
many by ``concurrency``), so services share engines between gunicorn's threads without locks
of their own, and two engines (detector and keypoint model) still run at the same time.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ..bundle import ENGINE_KIND, Bundle
from ..config import AUTO, ServiceConfig, for_model
from ..errors import ModelInvalid
from .formats import FORMAT_OF, runnable, why_not

if TYPE_CHECKING:
    from numpy.typing import NDArray

MODULE_SUFFIX = "_engine"


@runtime_checkable
class Engine(Protocol):
    """One loaded model: feeds by input *name*, outputs in graph order. ``run`` may be called
    from several threads (the factory's engines serialise themselves)."""

    input_names: list[str]

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> Sequence[NDArray[Any]]: ...


# What services are given to open their models: (bundle, deploy config) -> engine. Tests pass
# fakes of this shape to create_app(engine_factory=...).
EngineFactory = Callable[[Bundle, ServiceConfig], Engine]

_registry: dict[str, EngineFactory] = {}


def register(kind: str, factory: EngineFactory) -> None:
    """Serve engine ``kind`` with ``factory`` (before any ``<kind>_engine`` module)."""
    _registry[_checked_kind(kind, "register")] = factory


def unregister(kind: str) -> None:
    _registry.pop(kind, None)


def engine_kind(bundle: Bundle) -> str:
    """The engine a bundle needs: its format (bundle.py: the manifest's ``engine``, else Paddle)."""
    return bundle.engine


def known_kinds() -> list[str]:
    """Registered kinds and the backend modules this release ships."""
    here = [
        m.name[: -len(MODULE_SUFFIX)]
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.endswith(MODULE_SUFFIX)
    ]
    return sorted(set(here) | set(_registry))


def factory_for(kind: str) -> EngineFactory:
    """The factory of one engine kind (registered, else ``inference/<kind>_engine.py``'s ``create``)."""
    if kind in _registry:
        return _registry[kind]
    name = f"{__package__}.{_checked_kind(kind, 'engine')}{MODULE_SUFFIX}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the backend exists but its runtime library is not installed
            raise ModelInvalid(f"engine {kind!r} cannot load: {exc}") from None
        raise ModelInvalid(f"engine {kind!r} is not in this release (engines: {', '.join(known_kinds())})") from None
    create = getattr(module, "create", None)
    if not callable(create):
        raise ModelInvalid(f"{name} has no create(bundle, cfg)")
    factory: EngineFactory = create
    return factory


def role_of(bundle: Bundle, cfg: ServiceConfig) -> str | None:
    """The role (``cfg.models``'s key) whose directory is this bundle's, None when none is."""
    where = bundle.path.resolve()
    return next((role for role, path in sorted(cfg.models.items()) if Path(path).resolve() == where), None)


def backend_for(bundle: Bundle, cfg: ServiceConfig) -> str:
    """The backend that runs ``bundle`` under ``cfg``, most specific first: the operator's choice
    for this model (``model_backends``), the deploy's (``backend``), the release's measured
    choice (``tuning``, when auto), else the bundle's own format (Paddle's, or ONNX Runtime for an
    ONNX-only bundle). Never measures: a running release's choice is the one in its config."""
    role = role_of(bundle, cfg)
    for choice in (cfg.model_backends.get(role or ""), cfg.backend):
        if choice and choice != AUTO:
            return choice
    measured = cfg.tuning.get(role or "", {}).get("backend")
    if measured:
        return str(measured)
    own = engine_kind(bundle)
    can = runnable(bundle)
    return own if own in can or not can or own not in FORMAT_OF else can[0]


def create_engine(bundle: Bundle, cfg: ServiceConfig) -> Engine:
    """The production :data:`EngineFactory`: the backend :func:`backend_for` names, serialised."""
    kind = backend_for(bundle, cfg)
    why = None if kind in _registry else why_not(bundle, kind)
    if why:  # refused before its runtime is imported
        raise ModelInvalid(f"{why}: choose another backend (config 'backend' / 'model_backends')")
    # The model's own engine settings (model_options: precision, threads, streams) over the deploy's.
    engine = serialized(factory_for(kind)(bundle, for_model(cfg, role_of(bundle, cfg))))
    if isinstance(engine, SerializedEngine):
        engine.backend = kind
    return engine


def serialized(engine: Engine) -> Engine:
    """``engine`` behind a lock of its own (once: an engine already behind one is returned)."""
    if isinstance(engine, SerializedEngine):
        return engine
    if not isinstance(engine, Engine):
        raise TypeError(f"{type(engine).__name__} is not an Engine: it needs input_names and run(feeds)")
    return SerializedEngine(engine)


class SerializedEngine:
    """One run at a time (``concurrency`` at a time for an engine with parallel infer requests).
    Predictors are not thread-safe; and one lock per engine, not one per service, lets a request
    use one model while another request uses the next."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.input_names: list[str] = list(engine.input_names)
        self.output_names: list[str] = list(getattr(engine, "output_names", []))
        self._lock = threading.BoundedSemaphore(max(1, int(getattr(engine, "concurrency", 1))))
        # The backend that runs it (create_engine names it; a plug-in's engine may say so itself),
        # and who wants each run's seconds (api/app.py: /metrics' inference time by backend).
        self.backend: str = str(getattr(engine, "backend", "custom"))
        self.on_run: Callable[[float], None] | None = None

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> Sequence[NDArray[Any]]:
        with self._lock:
            start = time.perf_counter()
            out = self.engine.run(feeds)
            seconds = time.perf_counter() - start
        if self.on_run is not None:
            self.on_run(seconds)
        return out

    def __getattr__(self, name: str) -> object:
        # The backend's own attributes (a Paddle engine's ``onednn``, ``threads``) read through.
        if name == "engine":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self.engine, name)


def _checked_kind(kind: str, where: str) -> str:
    # A kind becomes part of a module name: nothing but a short identifier (bundle.py's rule).
    if not ENGINE_KIND.fullmatch(kind):
        raise ModelInvalid(f"{where}: engine kind must be a short lower-case identifier, got {kind!r}")
    return kind
