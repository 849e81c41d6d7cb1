"""The ``/<deploy>/predict`` operation's wire format: Ultralytics' predict settings (conf, iou, imgsz, max_det)
checked like every other field, and the answer in the shape of Ultralytics' ``Results.to_json()``.

Ultralytics' users already parse that shape: per detection ``name``, ``class``, ``confidence``,
``box {x1, y1, x2, y2}`` and ``keypoints {x, y, visible}`` (``visible`` only for a [K, 3]
model), each rounded to 5 decimals by Python's ``round`` as ``Results.summary`` does (checked
against Ultralytics 8.4.190 by tests/integration/test_ultralytics_compat.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InvalidArgument
from ...imaging import ImageLimits
from .. import fields
from .pipeline import MAX_DET, Person
from .yolo_pose import Detections, Query

DECIMALS = 5  # Results.to_json()'s default
AXES = ("x", "y", "visible")


@dataclass(frozen=True)
class PredictRequest:
    image: np.ndarray
    conf: float | None = None
    iou: float | None = None
    imgsz: int | None = None
    max_det: int | None = None


def decode(body: Mapping[str, Any], limits: ImageLimits) -> PredictRequest:
    return PredictRequest(
        fields.image(body.get("image"), limits),
        conf=fields.number(body, "conf", 0.0, 1.0),
        iou=fields.number(body, "iou", 0.0, 1.0),
        imgsz=fields.integer(body, "imgsz", None, lo=1, hi=1 << 15),
        max_det=fields.integer(body, "max_det", None, lo=1, hi=MAX_DET),
    )


def query(req: PredictRequest, base: Query, imgsz: tuple[int, int]) -> Query:
    """The request's settings over the deploy's. ``imgsz`` may only name the size the export was made
    for: its graph is fixed, and Ultralytics' predict on such an export uses that size too."""
    if req.imgsz is not None and req.imgsz != max(imgsz):
        raise InvalidArgument(f"'imgsz' must be {max(imgsz)} (the size this export was made for), got {req.imgsz}")
    return Query(
        base.conf if req.conf is None else req.conf,
        base.iou if req.iou is None else req.iou,
        base.max_det if req.max_det is None else req.max_det,
    )


def one_stage_only(req: PredictRequest) -> None:
    """A top-down deploy answers ``/predict`` too, but has no NMS or letterbox of its own to set."""
    for key in ("iou", "imgsz"):
        if getattr(req, key) is not None:
            raise InvalidArgument(f"'{key}' applies to a one-stage (YOLO) pose model; this deploy is top-down")


def encode(det: Detections) -> dict[str, Any]:
    results = []
    for i in range(len(det.boxes)):
        cls = int(det.classes[i])
        x1, y1, x2, y2 = (round(float(v), DECIMALS) for v in det.boxes[i])
        k = det.keypoints[i]
        kpts = {axis: [round(float(v), DECIMALS) for v in k[:, j]] for j, axis in enumerate(AXES[: k.shape[1]])}
        results.append(
            {
                "name": det.names[cls],
                "class": cls,
                "confidence": round(float(det.scores[i]), DECIMALS),
                "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                "keypoints": kpts,
            }
        )
    return {"results": results, "shape": list(det.shape)}


def detections(persons: list[Person], shape: tuple[int, int]) -> Detections:
    """A top-down pipeline's persons as Detections (class and name are the detector's)."""
    names = {p.box.cls_id: p.box.label for p in persons}
    size = max(names, default=0) + 1
    kpts = np.array([p.keypoints for p in persons], np.float32) if persons else np.zeros((0, 0, 3), np.float32)
    return Detections(
        np.array([p.box.xyxy for p in persons], np.float32).reshape(-1, 4),
        np.array([p.box.score for p in persons], np.float32),
        np.array([p.box.cls_id for p in persons], np.int64),
        kpts,
        tuple(names.get(i, str(i)) for i in range(size)),
        shape,
    )
