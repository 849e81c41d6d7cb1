"""One module per service; ``build_service`` picks it by ``cfg.service``."""

from __future__ import annotations

from typing import Any

from ..config import ServiceConfig
from ..errors import ConfigInvalid
from ..runtime.bundle import Bundle


def paddle_engine_factory(bundle: Bundle, cfg: ServiceConfig) -> Any:
    """Create the real Paddle predictor (imported lazily: only workers pay for paddle)."""
    from ..runtime.engine import Engine

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
    factory = engine_factory or paddle_engine_factory
    if cfg.service == "classification":
        from .classification import ClassificationService

        return ClassificationService(cfg, factory)
    raise ConfigInvalid(f"service {cfg.service!r} is not available in this release")
