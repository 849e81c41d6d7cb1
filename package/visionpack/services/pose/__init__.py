"""Pose pipelines of the keypoint service, and the factory that picks one from the deploy's bundles.

Every module here but ``pipeline.py`` (the protocol) is a pipeline exposing ``PIPELINE``: adding
one (a one-stage model such as YOLOv8-pose) is one new module, found by :func:`pipeline_classes`.
"""

from __future__ import annotations

import importlib
import pkgutil

from ...bundle import Bundle, load_bundle
from ...config import ServiceConfig
from ...errors import ConfigInvalid
from ...inference.engine import EngineFactory
from .pipeline import Options, PipelineClass, PosePipeline
from .yolo_export import is_export, load_export

NOT_PIPELINES = {"pipeline", "yolo_boxes", "yolo_export"}


def pipeline_classes() -> list[PipelineClass]:
    """Every pipeline of this package, by module name."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in NOT_PIPELINES or info.name.startswith("_"):
            continue
        cls = getattr(importlib.import_module(f"{__name__}.{info.name}"), "PIPELINE", None)
        if cls is not None:
            found.append(cls)
    return found


def build_pipeline(cfg: ServiceConfig, opts: Options, engines: EngineFactory) -> PosePipeline:
    """The pipeline that takes ``cfg.models``' roles (the bundles' tasks decide between several)."""
    kinds = pipeline_classes()
    roles = set(cfg.models)
    fits = [k for k in kinds if set(k.roles) == roles]
    if not fits:
        raise ConfigInvalid(_wrong_roles(kinds, roles))
    bundles = {role: load_model(cfg.models[role]) for role in fits[0].roles}
    # With one candidate its own checks say what is wrong with the bundles (e.g. swapped roles).
    chosen = next((k for k in fits if k.accepts(bundles)), fits[0])
    return chosen(cfg, opts, bundles, engines)


def load_model(path: str) -> Bundle:
    """A PaddleX bundle, or an Ultralytics export as ``yolo export`` wrote it (no inference.yml)."""
    return load_export(path) if is_export(path) else load_bundle(path)


def _wrong_roles(kinds: list[PipelineClass], roles: set[str]) -> str:
    wanted = " or ".join(dict.fromkeys(str(list(k.roles)) for k in kinds))
    nearest = max(kinds, key=lambda k: len(set(k.roles) & roles))
    missing = [r for r in nearest.roles if r not in roles]
    extra = sorted(roles - set(nearest.roles))
    return f"keypoint service needs models {wanted}; missing {missing}, unknown {extra}"
