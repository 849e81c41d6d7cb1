"""One module per service (``services/<name>.py`` exposing ``build``), picked by ``cfg.service``."""

from __future__ import annotations

import importlib
from typing import Any

from ..config import ServiceConfig
from ..errors import ConfigInvalid
from ..inference.bundle import Bundle


def paddle_engine_factory(bundle: Bundle, cfg: ServiceConfig) -> Any:
    """Create the real Paddle predictor (imported lazily: only workers pay for paddle)."""
    from ..inference.engine import Engine

    onednn = bundle.onednn_default if cfg.onednn is None else cfg.onednn
    return Engine(
        bundle.model_file,
        bundle.params_file,
        threads=cfg.effective_threads(),
        onednn=onednn,
        onednn_cache_capacity=cfg.onednn_cache_capacity,
        device=cfg.device,
    )


def build_service(cfg: ServiceConfig, engine_factory: Any = None) -> Any:
    """Import ``services/<cfg.service>.py`` and call its ``build(cfg, engine_factory)``."""
    try:
        module = importlib.import_module(f"{__package__}.{cfg.service}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{cfg.service}":
            raise
        raise ConfigInvalid(f"service {cfg.service!r} is not available in this release") from None
    return module.build(cfg, engine_factory or paddle_engine_factory)
