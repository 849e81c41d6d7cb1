"""Human keypoint detection: decode -> predict -> encode, the pose pipeline chosen from the deploy's bundles.

The pipeline (services/pose/) finds persons and their keypoints: top-down, a person detector
(PaddleX object-detection export) and a top-down keypoint model (PP-TinyPose contract) on every
box (pose/top_down.py), or one-stage, an Ultralytics YOLOv8-pose export (pose/yolo_pose.py).
This module owns the wire formats and drawing; ``/<deploy>/predict`` answers in Ultralytics'
Results.to_json() shape (pose/ultralytics_json.py).

Settings (``cfg.options``, checked here so a typo stops the service at start):
``det_threshold`` (default: the detector yml's ``draw_threshold``), ``flip`` (flip test, default
false), ``visualize_paddlex`` (default ``cfg.visualize``, i.e. on), ``visualize_easydl`` (default
false), ``kpt_batch`` (max persons per keypoint model call, default 32); one-stage only: ``iou``
(NMS, default 0.7) and ``max_det`` (default 300), ``det_threshold`` defaulting to 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ServiceConfig
from ..imaging import ImageLimits
from ..inference.engine import EngineFactory
from ..inference.visualize import skeleton_jpeg_b64
from . import fields
from .pose import build_pipeline, ultralytics_json as UJ
from .pose.pipeline import Person, parse_options
from .pose.yolo_pose import Detections, OneStage
from .protocol import Operation

COCO_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


@dataclass(frozen=True)
class KptRequest:
    image: np.ndarray
    threshold: float | None
    visualize: bool


@dataclass(frozen=True)
class KptResult:
    persons: list[Person]
    image: str | None = None


class KeypointService:
    kind = "keypoint"

    def __init__(self, cfg: ServiceConfig, engine_factory: EngineFactory) -> None:
        self.cfg = cfg
        self.opts = parse_options(cfg.options, cfg.visualize)
        self.limits = ImageLimits(cfg.max_image_b64_bytes, cfg.min_side, cfg.max_side)
        self.pipeline = build_pipeline(cfg, self.opts, engine_factory)

    def operations(self) -> dict[str, Operation]:
        return {
            "easydl.keypoint": Operation("easydl", self.decode_easydl, self.encode_easydl),
            "paddlex.keypoint": Operation("paddlex", self.decode_paddlex, self.encode_paddlex),
            # Ultralytics' Results.to_json() shape (services/pose/ultralytics_json.py), EasyDL's envelope.
            "easydl.predict": Operation("easydl", self.decode_predict, UJ.encode),
        }

    # --- decode -----------------------------------------------------------------------
    def decode_paddlex(self, body: dict[str, Any]) -> KptRequest:
        # PaddleX's schema: detThreshold: float | None (any finite number), visualize: bool | None.
        thr = fields.number(body, "detThreshold")
        if thr is not None:
            # Scores lie in [0, 1]: clipping changes no answer, and keeps 1e308 from overflowing
            # the float32 comparison in det_postprocess.
            thr = min(max(thr, -1.0), 2.0)
        vis = fields.boolean(body, "visualize", self.opts.visualize_paddlex)
        return KptRequest(fields.image(body.get("image"), self.limits), thr, bool(vis))

    def decode_easydl(self, body: dict[str, Any]) -> KptRequest:
        thr = fields.number(body, "threshold", 0.0, 1.0)
        vis = fields.boolean(body, "visualize", self.opts.visualize_easydl)
        return KptRequest(fields.image(body.get("image"), self.limits), thr, bool(vis))

    def decode_predict(self, body: dict[str, Any]) -> UJ.PredictRequest:
        return UJ.decode(body, self.limits)

    # --- predict ----------------------------------------------------------------------
    def predict(self, req: KptRequest | UJ.PredictRequest) -> Any:
        if isinstance(req, UJ.PredictRequest):
            return self.predict_json(req)
        persons = self.pipeline.predict(req.image, req.threshold)
        image = skeleton_jpeg_b64(req.image, [p.keypoints for p in persons]) if req.visualize else None
        return KptResult(persons, image)

    def predict_json(self, req: UJ.PredictRequest) -> Detections:
        h, w = req.image.shape[:2]
        if isinstance(self.pipeline, OneStage):
            return self.pipeline.detect(req.image, UJ.query(req, self.pipeline.query, self.pipeline.imgsz))
        UJ.one_stage_only(req)
        persons = self.pipeline.predict(req.image, req.conf)
        return UJ.detections(persons[: req.max_det], (h, w))

    # --- encode -----------------------------------------------------------------------
    @staticmethod
    def encode_paddlex(result: KptResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "persons": [
                {"bbox": p.box.xyxy, "kpts": p.keypoints.tolist(), "detScore": p.box.score, "kptScore": p.score}
                for p in result.persons
            ]
        }
        if result.image is not None:  # PaddleX serving omits None fields
            out["image"] = result.image
        return out

    @staticmethod
    def encode_easydl(result: KptResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "person_num": len(result.persons),
            "person_info": [body_analysis(p) for p in result.persons],
        }
        if result.image is not None:
            out["image"] = result.image
        return out

    def warmup(self) -> None:
        """Every model once at start, so /ready means 'answers requests'."""
        self.pipeline.warmup()


def body_analysis(p: Person) -> dict[str, Any]:
    """One person the way Baidu's body_analysis API shapes it (location + named body_parts)."""
    b = p.box
    k = p.keypoints
    names = COCO_NAMES if len(k) == len(COCO_NAMES) else tuple(f"keypoint_{i}" for i in range(len(k)))
    parts = {name: {"x": float(k[i, 0]), "y": float(k[i, 1]), "score": float(k[i, 2])} for i, name in enumerate(names)}
    if names is COCO_NAMES:
        # Baidu reports a neck; COCO has none. The shoulder midpoint is the usual stand-in
        # (OpenPose's COCO-18 neck), scored by the weaker shoulder.
        ls, rs = k[5], k[6]
        parts["neck"] = {
            "x": float((ls[0] + rs[0]) / 2),
            "y": float((ls[1] + rs[1]) / 2),
            "score": float(min(ls[2], rs[2])),
        }
    return {
        "location": {"left": b.x1, "top": b.y1, "width": b.x2 - b.x1, "height": b.y2 - b.y1, "score": b.score},
        "body_parts": parts,
    }


SERVICE = KeypointService
