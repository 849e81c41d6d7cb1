"""The engine seam: the ``Engine`` protocol every inference backend implements, and the one factory that
picks the backend a bundle needs.

A backend is one module, ``inference/<kind>_engine.py``, exposing ``create(bundle, cfg) ->
Engine``; the kind comes from the bundle (:func:`engine_kind`). Adding ONNX Runtime or OpenVINO
is one new module (``onnxruntime_engine.py``, ``openvino_engine.py``): nothing here changes, and
a worker imports only the backend its bundles use, so only that backend's module imports its
runtime library (``paddle_engine.py`` is the only importer of ``paddle``). :func:`register`
puts a factory in front of the modules (tests, plug-ins).

Thread safety is settled here, once: every engine the factory returns serialises its runs
with a lock of its own, so services share engines between gunicorn's threads without locks of
their own, and two engines (detector and keypoint model) still run at the same time.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from ..bundle import ENGINE_KIND, Bundle
from ..config import ServiceConfig
from ..errors import ModelInvalid

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


def create_engine(bundle: Bundle, cfg: ServiceConfig) -> Engine:
    """The production :data:`EngineFactory`: the bundle's backend, serialised."""
    return serialized(factory_for(engine_kind(bundle))(bundle, cfg))


def serialized(engine: Engine) -> Engine:
    """``engine`` behind a lock of its own (once: an engine already behind one is returned)."""
    if isinstance(engine, SerializedEngine):
        return engine
    if not isinstance(engine, Engine):
        raise TypeError(f"{type(engine).__name__} is not an Engine: it needs input_names and run(feeds)")
    return SerializedEngine(engine)


class SerializedEngine:
    """One run at a time. Predictors are not thread-safe; and one lock per engine, not one per
    service, lets a request use one model while another request uses the next."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.input_names: list[str] = list(engine.input_names)
        self.output_names: list[str] = list(getattr(engine, "output_names", []))
        self._lock = threading.Lock()

    def run(self, feeds: Mapping[str, NDArray[Any]]) -> Sequence[NDArray[Any]]:
        with self._lock:
            return self.engine.run(feeds)

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
