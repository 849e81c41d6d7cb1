"""Image classification: decode -> predict -> encode for both API dialects.

``decode`` turns a JSON body into a :class:`ClsRequest` (all validation happens here),
``predict`` runs the yml-driven preprocessing and the engine, ``encode_*`` shape the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bundle import load_bundle
from ..config import ServiceConfig
from ..errors import ConfigInvalid
from ..imaging import ImageLimits
from ..inference import cls_transforms as T
from ..inference.batching import Batcher
from ..inference.engine import EngineFactory
from . import fields
from .protocol import Operation

log = logging.getLogger("visionpack.classification")


@dataclass(frozen=True)
class ClsRequest:
    image: np.ndarray
    topk: int


class ClassificationService:
    kind = "classification"
    roles = ("classifier",)

    def __init__(self, cfg: ServiceConfig, engine_factory: EngineFactory) -> None:
        try:
            bundle_dir = cfg.models["classifier"]
        except KeyError:
            raise ConfigInvalid("config.models lacks the 'classifier' bundle") from None
        self.cfg = cfg
        self.bundle = load_bundle(bundle_dir)
        self.ops = T.build_preprocess(self.bundle.config)
        self.spec = T.build_topk(self.bundle.config)
        self.limits = ImageLimits(cfg.max_image_b64_bytes, cfg.min_side, cfg.max_side)
        self.engine = engine_factory(self.bundle, cfg)
        self.input_name = self.engine.input_names[0]
        # Requests that queue while the engine is busy run as one batch (docs/design.md
        # "Opportunistic batching"); the batcher runs one batch at a time.
        self.batcher: Batcher[np.ndarray, np.ndarray] = Batcher(self._run_batch, cfg.max_batch)

    def operations(self) -> dict[str, Operation]:
        return {
            "easydl.classify": Operation("easydl", self.decode_easydl, self.encode_easydl),
            "paddlex.classify": Operation("paddlex", self.decode_paddlex, self.encode_paddlex),
        }

    # --- decode -----------------------------------------------------------------------
    # Any positive top_num/topk is accepted (more than the classes gives every class), up to
    # the 64-bit bound every integer field has.
    def decode_easydl(self, body: dict[str, Any]) -> ClsRequest:
        topk = fields.integer(body, "top_num", self.cfg.default_top_num, lo=1)
        return ClsRequest(fields.image(body.get("image"), self.limits), topk)

    def decode_paddlex(self, body: dict[str, Any]) -> ClsRequest:
        topk = fields.integer(body, "topk", self.spec.topk, lo=1)
        return ClsRequest(fields.image(body.get("image"), self.limits), topk)

    # --- predict ----------------------------------------------------------------------
    def predict(self, req: ClsRequest) -> list[T.Category]:
        probs = self.batcher(T.preprocess(self.ops, req.image))
        return T.topk(probs[None, :], req.topk, self.spec.labels)[0]

    def _run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        probs = self.engine.run({self.input_name: T.batch(images)})[0]
        return list(probs)

    # --- encode -----------------------------------------------------------------------
    @staticmethod
    def encode_easydl(cats: list[T.Category]) -> dict[str, Any]:
        return {"results": [{"name": c.name, "score": c.score} for c in cats]}

    @staticmethod
    def encode_paddlex(cats: list[T.Category]) -> dict[str, Any]:
        return {"categories": [{"id": c.id, "name": c.name, "score": c.score} for c in cats]}

    def warmup(self) -> None:
        """Inference at start, so /ready means 'answers requests', not just 'loaded'.

        Also proves the model takes batches: an export with a fixed batch size of 1 would fail
        on the first batch of two under load, so it is found here and served one by one.
        """
        img = np.full((256, 256, 3), 127, dtype=np.uint8)
        x = T.preprocess(self.ops, img)
        single = self._run_batch([x])[0]
        if self.batcher.max_batch > 1:
            try:
                pair = self._run_batch([x, x])
                why = "" if len(pair) == 2 and np.allclose(pair[0], single, atol=1e-4) else "other answers in a batch"
            except Exception as exc:  # Paddle raises many types for a shape it cannot take
                why = str(exc)
            if why:
                log.warning("model does not take batches (%s); serving one image at a time", why)
                self.batcher.max_batch = 1


SERVICE = ClassificationService
