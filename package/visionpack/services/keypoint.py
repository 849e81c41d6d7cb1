"""Human keypoint detection (PaddleX top-down pipeline): decode -> predict -> encode.

A person detector (PaddleX object-detection export) finds boxes; a top-down keypoint model
(PP-TinyPose contract) reads every box. PaddleX runs the keypoint model once per person; here
all persons of an image go through it together, chunked by ``kpt_batch``. Each engine has its
own lock, so one request can be in the keypoint stage while the next one is detecting.

Settings (``cfg.options``, checked here so a typo stops the service at start):
``det_threshold`` (default: the detector yml's ``draw_threshold``), ``flip`` (flip test, default
false), ``visualize_paddlex`` (default ``cfg.visualize``, i.e. on), ``visualize_easydl`` (default
false), ``kpt_batch`` (max persons per keypoint model call, default 32).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..config import ServiceConfig
from ..errors import ConfigInvalid, ModelInvalid
from ..imaging import ImageLimits
from ..inference import det_postprocess as DP
from ..inference import kpt_transforms as KT
from ..inference.bundle import Bundle, load_bundle
from ..inference.det_transforms import DetPreprocessor
from ..inference.visualize import skeleton_jpeg_b64
from . import fields

EngineFactory = Callable[[Bundle, ServiceConfig], Any]

COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
DEFAULT_KPT_BATCH = 32


@dataclass(frozen=True)
class Options:
    det_threshold: float | None = None
    flip: bool = False
    visualize_paddlex: bool = True
    visualize_easydl: bool = False
    kpt_batch: int = DEFAULT_KPT_BATCH


def parse_options(raw: Any, visualize_default: bool) -> Options:
    opts = dict(raw or {})
    unknown = sorted(set(opts) - set(Options.__dataclass_fields__))
    if unknown:
        raise ConfigInvalid(f"options: unknown key(s) {', '.join(unknown)} for the keypoint service")
    bad = ConfigInvalid
    thr = fields.number(opts, "det_threshold", 0.0, 1.0, err=bad, name="options.det_threshold")
    flags = {key: fields.boolean(opts, key, None, err=bad, name=f"options.{key}")
             for key in ("flip", "visualize_paddlex", "visualize_easydl")}
    return Options(
        det_threshold=thr,
        flip=bool(flags["flip"]),
        visualize_paddlex=visualize_default if flags["visualize_paddlex"] is None else flags["visualize_paddlex"],
        visualize_easydl=bool(flags["visualize_easydl"]),
        kpt_batch=fields.integer(opts, "kpt_batch", DEFAULT_KPT_BATCH, lo=1, err=bad, name="options.kpt_batch"),
    )


@dataclass(frozen=True)
class KptRequest:
    image: np.ndarray
    threshold: float | None
    visualize: bool


@dataclass(frozen=True)
class Person:
    box: DP.DetBox
    keypoints: np.ndarray  # [K, 3] float32: x, y, score in image pixels
    score: float           # mean keypoint score


@dataclass(frozen=True)
class KptResult:
    persons: list[Person]
    image: str | None = None


class KeypointService:
    kind = "keypoint"
    roles = ("detector", "keypoint")

    def __init__(self, cfg: ServiceConfig, engine_factory: EngineFactory) -> None:
        self.cfg = cfg
        self.opts = parse_options(cfg.options, cfg.visualize)
        missing = [r for r in self.roles if r not in cfg.models]
        extra = sorted(set(cfg.models) - set(self.roles))
        if missing or extra:
            raise ConfigInvalid(f"keypoint service needs models {list(self.roles)}; missing {missing}, unknown {extra}")
        self.det_bundle = load_bundle(cfg.models["detector"])
        self.kpt_bundle = load_bundle(cfg.models["keypoint"])
        if self.det_bundle.task == "keypoint_detection" or self.kpt_bundle.task == "object_detection":
            # The likeliest mistake in a hand-written config; say so instead of "unsupported op".
            raise ModelInvalid("models.detector and models.keypoint look swapped "
                               f"({self.det_bundle.path.name}: {self.det_bundle.task}, "
                               f"{self.kpt_bundle.path.name}: {self.kpt_bundle.task})")
        self.labels = DP.read_labels(self.det_bundle.config)
        self.threshold = self.opts.det_threshold
        if self.threshold is None:
            self.threshold = DP.default_threshold(self.det_bundle.config)
        self.kpt_spec = KT.read_spec(self.kpt_bundle.config, self.kpt_bundle.model_name)
        self.limits = ImageLimits(cfg.max_image_b64_bytes, cfg.min_side, cfg.max_side)
        self.det_engine = engine_factory(self.det_bundle, cfg)
        self.det_pre = DetPreprocessor.from_config(self.det_bundle.config, self.det_engine.input_names)
        self.kpt_engine = engine_factory(self.kpt_bundle, cfg)
        names = list(self.kpt_engine.input_names)
        if len(names) != 1:
            raise ModelInvalid(f"keypoint model must take one image input, it takes {names}")
        self.kpt_input = names[0]
        # Paddle predictors are not thread-safe; one lock per engine lets stages overlap.
        self._det_lock = threading.Lock()
        self._kpt_lock = threading.Lock()

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

    # --- predict ----------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> list[DP.DetBox]:
        feeds = self.det_pre(rgb)
        with self._det_lock:
            outputs = self.det_engine.run(feeds)
        rows, counts = DP.pick_outputs(outputs)
        per_image = DP.split_by_counts(rows, counts)
        rows = per_image[0] if per_image else rows[:0]
        h, w = rgb.shape[:2]
        return DP.postprocess(rows, w, h, self.threshold if threshold is None else threshold, self.labels)

    def keypoints(self, rgb: np.ndarray, boxes: list[DP.DetBox]) -> tuple[np.ndarray, np.ndarray]:
        """All persons of one image: keypoints [N,K,3] and scores [N], ``kpt_batch`` per call."""
        if not boxes:
            return np.zeros((0, 0, 3), np.float32), np.zeros(0, np.float32)
        spec = self.kpt_spec
        centers, scales = KT.box_to_center_scale([b.xyxy for b in boxes], spec.aspect)
        kpts, scores = [], []
        step = self.opts.kpt_batch
        for i in range(0, len(boxes), step):
            c, s = centers[i:i + step], scales[i:i + step]
            x = KT.crop_inputs(rgb, c, s, spec)
            n = len(x)
            if self.opts.flip:
                # Plain and flipped crops in one call: one predictor round trip, not two.
                x = np.concatenate([x, x[:, :, :, ::-1]])
            with self._kpt_lock:
                outputs = self.kpt_engine.run({self.kpt_input: np.ascontiguousarray(x)})
            hm = KT.keypoint_heatmaps(outputs, len(x))
            if self.opts.flip:
                hm = KT.merge_flip(hm[:n], hm[n:], spec)
            k, sc = KT.decode(hm, c, s, spec.use_dark)
            kpts.append(k)
            scores.append(sc)
        return np.concatenate(kpts), np.concatenate(scores)

    def predict(self, req: KptRequest) -> KptResult:
        boxes = self.detect(req.image, req.threshold)
        kpts, scores = self.keypoints(req.image, boxes)
        persons = [Person(b, kpts[i], float(scores[i])) for i, b in enumerate(boxes)]
        image = skeleton_jpeg_b64(req.image, [p.keypoints for p in persons]) if req.visualize else None
        return KptResult(persons, image)

    # --- encode -----------------------------------------------------------------------
    @staticmethod
    def encode_paddlex(result: KptResult) -> dict[str, Any]:
        out: dict[str, Any] = {"persons": [
            {"bbox": p.box.xyxy, "kpts": p.keypoints.tolist(), "detScore": p.box.score, "kptScore": p.score}
            for p in result.persons
        ]}
        if result.image is not None:  # PaddleX serving omits None fields
            out["image"] = result.image
        return out

    @staticmethod
    def encode_easydl(result: KptResult) -> dict[str, Any]:
        out: dict[str, Any] = {"person_num": len(result.persons), "person_info": [body_analysis(p) for p in result.persons]}
        if result.image is not None:
            out["image"] = result.image
        return out

    def warmup(self) -> None:
        """Both models once at start, so /ready means 'answers requests'."""
        img = np.full((256, 256, 3), 127, np.uint8)
        self.detect(img)
        self.keypoints(img, [DP.DetBox(0, self.labels[0], 1.0, 64.0, 32.0, 192.0, 224.0)])


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
        parts["neck"] = {"x": float((ls[0] + rs[0]) / 2), "y": float((ls[1] + rs[1]) / 2),
                         "score": float(min(ls[2], rs[2]))}
    return {
        "location": {"left": b.x1, "top": b.y1, "width": b.x2 - b.x1, "height": b.y2 - b.y1, "score": b.score},
        "body_parts": parts,
    }


def build(cfg: ServiceConfig, engine_factory: EngineFactory) -> KeypointService:
    return KeypointService(cfg, engine_factory)
