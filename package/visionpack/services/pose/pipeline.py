"""The ``PosePipeline`` protocol (image -> persons with keypoints), its result ``Person`` and the keypoint
service's options.

A pipeline is one way of finding people's keypoints from a set of bundles: top-down
(``top_down.py``: a person detector, then a keypoint model on every box) today; a one-stage
model (boxes and keypoints from one network) is another module beside it. Each declares the
model roles it takes (``cfg.models`` keys); the factory (``pose/__init__.py``) picks the one
whose roles match the deploy's, asking :meth:`PipelineClass.accepts` when several do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ...bundle import Bundle
from ...config import ServiceConfig
from ...errors import ConfigInvalid
from ...inference.det_postprocess import DetBox
from ...inference.engine import EngineFactory
from .. import fields

DEFAULT_KPT_BATCH = 32
MAX_DET = 30000  # Ultralytics keeps at most 30000 NMS candidates: more detections cannot exist


@dataclass(frozen=True)
class Options:
    det_threshold: float | None = None
    flip: bool = False
    visualize_paddlex: bool = True
    visualize_easydl: bool = False
    kpt_batch: int = DEFAULT_KPT_BATCH
    # One-stage (YOLO) pipelines' NMS: suppress IoU above ``iou``, keep at most ``max_det`` persons.
    iou: float = 0.7
    max_det: int = 300


def parse_options(raw: Any, visualize_default: bool) -> Options:
    opts = dict(raw or {})
    unknown = sorted(set(opts) - set(Options.__dataclass_fields__))
    if unknown:
        raise ConfigInvalid(f"options: unknown key(s) {', '.join(unknown)} for the keypoint service")
    bad = ConfigInvalid
    thr = fields.number(opts, "det_threshold", 0.0, 1.0, err=bad, name="options.det_threshold")
    flags = {
        key: fields.boolean(opts, key, None, err=bad, name=f"options.{key}")
        for key in ("flip", "visualize_paddlex", "visualize_easydl")
    }
    return Options(
        det_threshold=thr,
        flip=bool(flags["flip"]),
        visualize_paddlex=visualize_default if flags["visualize_paddlex"] is None else flags["visualize_paddlex"],
        visualize_easydl=bool(flags["visualize_easydl"]),
        kpt_batch=fields.integer(opts, "kpt_batch", DEFAULT_KPT_BATCH, lo=1, err=bad, name="options.kpt_batch"),
        iou=_or(fields.number(opts, "iou", 0.0, 1.0, err=bad, name="options.iou"), Options.iou),
        max_det=fields.integer(opts, "max_det", Options.max_det, lo=1, hi=MAX_DET, err=bad, name="options.max_det"),
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class Person:
    box: DetBox
    keypoints: np.ndarray  # [K, 3] float32: x, y, score in image pixels
    score: float  # mean keypoint score


class PosePipeline(Protocol):
    """Set up from its bundles; ``predict`` may be called from several threads at once."""

    def predict(self, rgb: np.ndarray, threshold: float | None) -> list[Person]:
        """Every person found above ``threshold`` (None: the pipeline's default), best first."""

    def warmup(self) -> None:
        """Every model once, on a blank image."""


class PipelineClass(Protocol):
    """What the factory needs of a pipeline's class (``PIPELINE`` in its module)."""

    roles: tuple[str, ...]  # cfg.models keys it takes, in the order its bundles are loaded

    def accepts(self, bundles: Mapping[str, Bundle]) -> bool:
        """Whether these bundles (tasks, formats) are this pipeline's; asked only to choose
        between pipelines taking the same roles."""

    def __call__(
        self, cfg: ServiceConfig, opts: Options, bundles: Mapping[str, Bundle], engines: EngineFactory
    ) -> PosePipeline: ...
