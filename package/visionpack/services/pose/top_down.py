"""The top-down pose pipeline (PaddleX's human keypoint pipeline): a person detector, then a top-down
keypoint model (PP-TinyPose contract) on every box.

PaddleX runs the keypoint model once per person; here all persons of an image go through it
together, chunked by ``kpt_batch``. Each engine serialises only itself (inference/engine.py),
so one request can be in the keypoint stage while the next one is detecting.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...bundle import Bundle
from ...config import ServiceConfig
from ...errors import ModelInvalid
from ...inference import det_postprocess as DP, kpt_transforms as KT
from ...inference.det_transforms import DetPreprocessor
from ...inference.engine import EngineFactory
from .pipeline import Options, Person


class TopDownPipeline:
    roles = ("detector", "keypoint")

    @classmethod
    def accepts(cls, bundles: Mapping[str, Bundle]) -> bool:
        return (bundles["detector"].task, bundles["keypoint"].task) == ("object_detection", "keypoint_detection")

    def __init__(
        self, cfg: ServiceConfig, opts: Options, bundles: Mapping[str, Bundle], engines: EngineFactory
    ) -> None:
        self.opts = opts
        self.det_bundle, self.kpt_bundle = bundles["detector"], bundles["keypoint"]
        if self.det_bundle.task == "keypoint_detection" or self.kpt_bundle.task == "object_detection":
            # The likeliest mistake in a hand-written config; say so instead of "unsupported op".
            raise ModelInvalid(
                "models.detector and models.keypoint look swapped "
                f"({self.det_bundle.path.name}: {self.det_bundle.task}, "
                f"{self.kpt_bundle.path.name}: {self.kpt_bundle.task})"
            )
        self.labels = DP.read_labels(self.det_bundle.config)
        self.threshold = (
            DP.default_threshold(self.det_bundle.config) if opts.det_threshold is None else opts.det_threshold
        )
        self.kpt_spec = KT.read_spec(self.kpt_bundle.config, self.kpt_bundle.model_name)
        self.det_engine = engines(self.det_bundle, cfg)
        self.det_pre = DetPreprocessor.from_config(self.det_bundle.config, self.det_engine.input_names)
        self.kpt_engine = engines(self.kpt_bundle, cfg)
        names = list(self.kpt_engine.input_names)
        if len(names) != 1:
            raise ModelInvalid(f"keypoint model must take one image input, it takes {names}")
        self.kpt_input = names[0]

    def predict(self, rgb: np.ndarray, threshold: float | None) -> list[Person]:
        boxes = self.detect(rgb, threshold)
        kpts, scores = self.keypoints(rgb, boxes)
        return [Person(b, kpts[i], float(scores[i])) for i, b in enumerate(boxes)]

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> list[DP.DetBox]:
        outputs = self.det_engine.run(self.det_pre(rgb))
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
            c, s = centers[i : i + step], scales[i : i + step]
            x = KT.crop_inputs(rgb, c, s, spec)
            n = len(x)
            if self.opts.flip:
                # Plain and flipped crops in one call: one predictor round trip, not two.
                x = np.concatenate([x, x[:, :, :, ::-1]])
            outputs = self.kpt_engine.run({self.kpt_input: np.ascontiguousarray(x)})
            hm = KT.keypoint_heatmaps(outputs, len(x))
            if self.opts.flip:
                hm = KT.merge_flip(hm[:n], hm[n:], spec)
            k, sc = KT.decode(hm, c, s, spec.use_dark)
            kpts.append(k)
            scores.append(sc)
        return np.concatenate(kpts), np.concatenate(scores)

    def warmup(self) -> None:
        img = np.full((256, 256, 3), 127, np.uint8)
        self.detect(img)
        self.keypoints(img, [DP.DetBox(0, self.labels[0], 1.0, 64.0, 32.0, 192.0, 224.0)])


PIPELINE = TopDownPipeline
