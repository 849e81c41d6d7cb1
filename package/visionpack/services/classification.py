"""Image classification: decode -> predict -> encode for both API dialects.

``decode`` turns a JSON body into a :class:`ClsRequest` (all validation happens here),
``predict`` runs the yml-driven preprocessing and the engine, ``encode_*`` shape the result.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..config import ServiceConfig
from ..errors import InvalidArgument, MissingParameter
from ..imaging import ImageLimits, decode_b64
from ..runtime import cls_transforms as T
from ..runtime.bundle import Bundle, load_bundle

EngineFactory = Callable[[Bundle, ServiceConfig], Any]


@dataclass(frozen=True)
class ClsRequest:
    image: np.ndarray
    topk: int


def positive_int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    # bool is an int in Python; "top_num": true is a client bug, not 1.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise InvalidArgument(f"'{key}' must be a positive integer, got {value!r}")
    return int(value)


class ClassificationService:
    kind = "classification"
    roles = ("classifier",)

    def __init__(self, cfg: ServiceConfig, engine_factory: EngineFactory) -> None:
        try:
            bundle_dir = cfg.models["classifier"]
        except KeyError:
            raise InvalidArgument("config.models lacks the 'classifier' bundle") from None
        self.cfg = cfg
        self.bundle = load_bundle(bundle_dir)
        self.ops = T.build_preprocess(self.bundle.config)
        self.spec = T.build_topk(self.bundle.config)
        self.limits = ImageLimits(cfg.max_image_b64_bytes, cfg.min_side, cfg.max_side)
        self.engine = engine_factory(self.bundle, cfg)
        self.input_name = self.engine.input_names[0]
        self._lock = threading.Lock()  # Paddle predictors are not thread-safe

    # --- decode -----------------------------------------------------------------------
    def _image(self, body: dict[str, Any]) -> np.ndarray:
        if "image" not in body or body["image"] in (None, ""):
            raise MissingParameter("'image' is required")
        return decode_b64(body["image"], self.limits)

    def decode_easydl(self, body: dict[str, Any]) -> ClsRequest:
        topk = positive_int(body, "top_num", self.cfg.default_top_num)
        return ClsRequest(self._image(body), topk)

    def decode_paddlex(self, body: dict[str, Any]) -> ClsRequest:
        topk = positive_int(body, "topk", self.spec.topk)
        return ClsRequest(self._image(body), topk)

    # --- predict ----------------------------------------------------------------------
    def predict(self, req: ClsRequest) -> list[T.Category]:
        x = T.batch([T.preprocess(self.ops, req.image)])
        with self._lock:
            probs = self.engine.run({self.input_name: x})[0]
        return T.topk(probs, req.topk, self.spec.labels)[0]

    # --- encode -----------------------------------------------------------------------
    @staticmethod
    def encode_easydl(cats: list[T.Category]) -> dict[str, Any]:
        return {"results": [{"name": c.name, "score": c.score} for c in cats]}

    @staticmethod
    def encode_paddlex(cats: list[T.Category]) -> dict[str, Any]:
        return {"categories": [{"id": c.id, "name": c.name, "score": c.score} for c in cats]}

    def warmup(self) -> None:
        """One inference at start, so /ready means 'answers requests', not just 'loaded'."""
        h = w = 256
        img = np.full((h, w, 3), 127, dtype=np.uint8)
        self.predict(ClsRequest(img, 1))


def build(cfg: ServiceConfig, engine_factory: EngineFactory) -> ClassificationService:
    return ClassificationService(cfg, engine_factory)
