"""Face detectors of the face service: the ``FaceDetector`` protocol, its two implementations (the MTCNN
cascade, one PaddleX face detector) and the factory that picks one from the deploy's model roles.

MTCNN (``detector_pnet``/``detector_rnet``/``detector_onet``) gives boxes and five landmarks, so
chips are aligned; a PaddleX face detector (``detector``) gives boxes only (PaddleX's crop).
Engines serialise themselves (inference/engine.py): the detectors hold no locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..bundle import load_bundle
from ..config import ServiceConfig
from ..errors import ConfigInvalid, ModelInvalid
from ..inference import det_postprocess as DP, mtcnn as M
from ..inference.det_transforms import DetPreprocessor
from ..inference.engine import EngineFactory

FEATURE_ROLE = "feature"


@dataclass(frozen=True)
class Face:
    box: list[float]  # x1, y1, x2, y2 clipped to the image
    score: float
    landmarks: np.ndarray | None = None
    hits: list = field(default_factory=list)  # gallery Hits that pass the threshold, best first


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray, threshold: float | None) -> list[Face]:
        """Faces clipped to the image, in the model's order; ``threshold`` None: the model's default."""


class MtcnnDetector:
    roles = ("detector_pnet", "detector_rnet", "detector_onet")

    def __init__(self, cfg: ServiceConfig, engines: EngineFactory, min_face_size: int) -> None:
        stages = {}
        for role in self.roles:
            b = load_bundle(cfg.models[role])
            names = (b.manifest.get("runtime") or {}).get("outputs") or (b.config.get("MTCNN") or {}).get("outputs")
            if not names:
                raise ModelInvalid(f"{b.path}: MTCNN stage bundle does not name its outputs (runtime.outputs)")
            stages[role] = M.stage_from_engine(engines(b, cfg), names)
        self.cascade = M.Cascade(
            stages["detector_pnet"], stages["detector_rnet"], stages["detector_onet"], min_size=min_face_size
        )

    def detect(self, rgb: np.ndarray, threshold: float | None) -> list[Face]:
        h, w = rgb.shape[:2]
        return [Face(M.clip_box(f.box, w, h), f.score, f.landmarks) for f in self.cascade.detect(rgb, threshold)]


class PaddleXDetector:
    roles = ("detector",)

    def __init__(self, cfg: ServiceConfig, engines: EngineFactory, min_face_size: int) -> None:
        self.bundle = load_bundle(cfg.models["detector"])
        self.engine = engines(self.bundle, cfg)
        self.pre = DetPreprocessor.from_config(self.bundle.config, self.engine.input_names)
        self.labels = DP.read_labels(self.bundle.config)
        self.default_threshold = DP.default_threshold(self.bundle.config)

    def detect(self, rgb: np.ndarray, threshold: float | None) -> list[Face]:
        h, w = rgb.shape[:2]
        rows, counts = DP.pick_outputs(self.engine.run(self.pre(rgb)))
        per_image = DP.split_by_counts(rows, counts)
        boxes = DP.postprocess(
            per_image[0] if per_image else rows[:0],
            w,
            h,
            self.default_threshold if threshold is None else threshold,
            self.labels,
        )
        return [Face(b.xyxy, float(b.score)) for b in boxes]


DETECTORS: tuple[type[MtcnnDetector] | type[PaddleXDetector], ...] = (MtcnnDetector, PaddleXDetector)


def detector_class(roles: set[str]) -> type[MtcnnDetector] | type[PaddleXDetector]:
    """The detector whose roles, with the feature model's, are exactly ``roles`` (checked before
    any bundle is loaded, so a wrong config is named as such)."""
    for cls in DETECTORS:
        if roles == {*cls.roles, FEATURE_ROLE}:
            return cls
    wanted = " or ".join(str([*cls.roles, FEATURE_ROLE]) for cls in DETECTORS)
    raise ConfigInvalid(f"face service needs models {wanted}, got {sorted(roles)}")
