"""The one-stage pose pipeline: an Ultralytics YOLOv8-pose export, served unchanged, answering as Ultralytics'
own ``predict`` does on the same export (letterbox, strict confidence filter, greedy NMS, scale-back).

The deploy names the export's directory as its one model (role ``pose``); yolo_export.py reads it and
refuses what it cannot serve, yolo_boxes.py holds Ultralytics' arithmetic. Requests that queue
while the engine is busy run as one batch when the export takes a batch dimension (a fixed batch
of n: padded to n; a Paddle export: probed at warm-up, as classification does).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ...bundle import Bundle
from ...config import ServiceConfig
from ...errors import ModelInvalid
from ...inference.batching import Batcher
from ...inference.det_postprocess import DetBox
from ...inference.engine import EngineFactory
from . import yolo_boxes as YB
from .pipeline import Options, Person
from .yolo_export import ExportBundle, Spec, check_metadata

log = logging.getLogger(__name__)

DEFAULT_CONF = 0.25  # Ultralytics' predict defaults
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300


@dataclass(frozen=True)
class Query:
    """One image's settings (Ultralytics' names)."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET


@dataclass(frozen=True)
class Detections:
    """One image's answer, as Ultralytics' Results holds it: boxes [N, 4], scores [N], classes [N],
    keypoints [N, K, D] in the original image's pixels, best first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    keypoints: np.ndarray
    names: tuple[str, ...]
    shape: tuple[int, int]  # (h, w) of the original image


@runtime_checkable
class OneStage(Protocol):
    """A pipeline that answers as Ultralytics' predict does (the keypoint service's ``/predict``)."""

    query: Query
    imgsz: tuple[int, int]

    def detect(self, rgb: np.ndarray, query: Query | None = None) -> Detections: ...


class YoloPosePipeline:
    roles = ("pose",)

    @classmethod
    def accepts(cls, bundles: Mapping[str, Bundle]) -> bool:
        return isinstance(bundles["pose"], ExportBundle)

    def __init__(
        self, cfg: ServiceConfig, opts: Options, bundles: Mapping[str, Bundle], engines: EngineFactory
    ) -> None:
        bundle = bundles["pose"]
        if not isinstance(bundle, ExportBundle):
            raise ModelInvalid(
                f"models.pose ({bundle.path}) is not an Ultralytics pose export (a *.onnx or *_paddle_model/ "
                "written by `yolo export`)"
            )
        self.bundle = bundle
        self.spec: Spec = check_metadata(bundle.meta, str(bundle.path))
        self.opts = opts
        self.query = Query(DEFAULT_CONF if opts.det_threshold is None else opts.det_threshold, opts.iou, opts.max_det)
        k, d = self.spec.kpt_shape
        self.channels = 4 + len(self.spec.names) + k * d
        self.fixed_batch = self._check_graph()
        if bundle.paddle is not None and bundle.onnx is None:
            # Paddle 3.3 fails at run() on this graph with oneDNN on (reference/ultralytics-pose.md).
            cfg = dataclasses.replace(cfg, onednn=False)
        self.engine = engines(bundle, cfg)
        names = list(self.engine.input_names)
        if len(names) != 1:
            raise ModelInvalid(f"{bundle.path}: a pose export takes one image input, this one takes {names}")
        self.input = names[0]
        self.batcher: Batcher[np.ndarray, np.ndarray] = Batcher(self._run_batch, self.fixed_batch or cfg.max_batch)
        self.probed = self.fixed_batch is not None

    @property
    def imgsz(self) -> tuple[int, int]:
        return self.spec.imgsz

    def _check_graph(self) -> int | None:
        """The ONNX graph's declared shapes against the metadata; the fixed batch size (None: dynamic or unknown)."""
        b = self.bundle
        if b.onnx is None:
            return None
        where = str(b.onnx)
        if len(b.inputs) != 1 or len(b.inputs[0]) != 4:
            raise ModelInvalid(
                f"{where}: a pose export takes one [batch, 3, height, width] input, got {list(b.inputs)}"
            )
        batch, ch, h, w = b.inputs[0]
        if ch != 3:
            raise ModelInvalid(f"{where}: the input must have 3 channels, it declares {ch!r}")
        if isinstance(h, int) and isinstance(w, int) and (h, w) != self.spec.imgsz:
            raise ModelInvalid(f"{where}: input {h}x{w} but metadata imgsz {list(self.spec.imgsz)}")
        if len(b.outputs) != 1 or len(b.outputs[0]) != 3:
            raise ModelInvalid(
                f"{where}: a pose export has one [batch, channels, anchors] output, got {list(b.outputs)}"
            )
        self._check_channels(b.outputs[0][1], where)
        return batch if isinstance(batch, int) else None

    def _check_channels(self, got: object, where: str) -> None:
        if isinstance(got, int) and got != self.channels:
            k, d = self.spec.kpt_shape
            raise ModelInvalid(
                f"{where}: output has {got} channels; a pose model with {len(self.spec.names)} class(es) and "
                f"kpt_shape [{k}, {d}] has 4 + {len(self.spec.names)} + {k * d} = {self.channels}"
            )

    # --- running ----------------------------------------------------------------------
    def _run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        n = len(images)
        x = np.stack(images)
        if self.fixed_batch is not None and n < self.fixed_batch:
            # A fixed-batch export takes exactly that many images: pad with blank ones.
            x = np.concatenate([x, np.zeros((self.fixed_batch - n, *x.shape[1:]), np.float32)])
        out = np.asarray(self.engine.run({self.input: x})[0])
        if out.ndim != 3 or out.shape[0] != len(x) or out.shape[1] != self.channels:
            self._check_channels(out.shape[1] if out.ndim == 3 else None, str(self.bundle.path))
            raise ModelInvalid(
                f"{self.bundle.path}: output shape {list(out.shape)} for a batch of {len(x)}; "
                f"expected [{len(x)}, {self.channels}, anchors]"
            )
        return [out[i] for i in range(n)]

    def detect(self, rgb: np.ndarray, query: Query | None = None) -> Detections:
        """Ultralytics' ``predict`` on one RGB image."""
        q = query or self.query
        x, box = YB.letterbox(rgb, self.imgsz)
        raw = self.batcher(x)
        rows = YB.nms(YB.candidates(raw, len(self.spec.names), q.conf), q.iou, q.max_det)
        boxes, kpts = YB.scale_back(rows, self.spec.kpt_shape, box)
        return Detections(
            boxes, rows[:, 4].copy(), rows[:, 5].astype(np.int64), kpts, self.spec.names, (box.h0, box.w0)
        )

    def predict(self, rgb: np.ndarray, threshold: float | None) -> list[Person]:
        q = self.query if threshold is None else dataclasses.replace(self.query, conf=threshold)
        return persons(self.detect(rgb, q))

    def warmup(self) -> None:
        """One blank image; proves the output shape, and whether batches work (when the graph does not say)."""
        img = np.full((*self.imgsz, 3), 127, np.uint8)
        single = self._run_batch([YB.letterbox(img, self.imgsz)[0]])[0]
        if self.probed or self.batcher.max_batch == 1:
            return
        self.probed = True
        x = YB.letterbox(img, self.imgsz)[0]
        try:
            pair = self._run_batch([x, x])
            same = all(np.allclose(p, single, atol=1e-3) for p in pair)
            why = "" if same else "other answers in a batch"
        except Exception as exc:  # a fixed-shape graph refuses a batch of two in its own words
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if why:
            log.warning("pose export does not take batches (%s); serving one image at a time", why)
            self.batcher.max_batch = 1


def persons(det: Detections) -> list[Person]:
    """Detections as the keypoint service's persons: [K, 3] keypoints (a [K, 2] model's scored 1),
    scored by their mean keypoint score (the box's score without keypoint scores)."""
    out = []
    for i in range(len(det.boxes)):
        k = det.keypoints[i]
        if k.shape[1] == 2:
            k = np.concatenate([k, np.ones((len(k), 1), np.float32)], axis=1)
            score = float(det.scores[i])
        else:
            score = float(k[:, 2].mean())
        x1, y1, x2, y2 = (float(v) for v in det.boxes[i])
        cls = int(det.classes[i])
        out.append(Person(DetBox(cls, det.names[cls], float(det.scores[i]), x1, y1, x2, y2), k, score))
    return out


PIPELINE = YoloPosePipeline
