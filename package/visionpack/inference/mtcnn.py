"""MTCNN cascade (Zhang et al. 2016) around three converted stage networks.

Stages, with facenet-pytorch's constants (its weights are what our bundles hold):

1. **Pyramid + PNet.** The image is resized by ``s = 12/min_size · factor^k`` while its short
   side times ``s`` is at least 12 px (size ``int(side·s + 1)``, area interpolation); PNet slides
   a 12x12 window with stride 2, so each output cell whose face probability reaches
   ``thresholds[0]`` is a box ``[(2·x+1)/s, (2·y+1)/s, (2·x+12)/s, (2·y+12)/s]``. NMS at IoU 0.5
   per scale, 0.7 across scales, then the cell's regression moves the box and it is squared.
2. **RNet** re-scores 24x24 crops of those boxes (``thresholds[1]``), NMS 0.7, regression, square.
3. **ONet** re-scores 48x48 crops (``thresholds[2]``) and gives five landmarks as fractions of
   the box (decoded before the final regression); regression, then NMS 0.7 measured as
   intersection over the *smaller* box (sizes +1), which removes a small box nested in a larger
   one (IoU would keep it). docs/face-models.md lists these facts with their sources.

Crops are taken from the box clipped to the image (1-based, inclusive, as the MATLAB original)
and resized to the stage's input, so boxes at the border are squeezed rather than padded;
that is what the networks were trained on. The stage networks are plain callables here
(``[N,3,H,W] float32 -> outputs``), so this module is numpy + cv2 and is tested with fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from .engine import Engine

Stage = Callable[[np.ndarray], Mapping[str, np.ndarray]]

MIN_SIZE = 20
FACTOR = 0.709
THRESHOLDS = (0.6, 0.7, 0.7)
INPUT_MEAN = 127.5
INPUT_SCALE = 0.0078125
CELL, STRIDE = 12, 2
MAX_BATCH = 32  # measured: larger batches are slower per crop on CPU without oneDNN


@dataclass(frozen=True)
class FaceBox:
    box: np.ndarray  # [x1, y1, x2, y2] float64, image pixels
    score: float
    landmarks: np.ndarray | None  # [5, 2] (x, y): left eye, right eye, nose, mouth left, mouth right


def pyramid_scales(h: int, w: int, min_size: int = MIN_SIZE, factor: float = FACTOR) -> list[float]:
    """Scales at which a ``min_size`` face becomes PNet's 12 px window, down to a 12 px image."""
    if min_size < CELL or not 0 < factor < 1:
        raise ValueError(f"min_size must be >= {CELL} and factor in (0, 1)")
    scale = CELL / min_size
    short = min(h, w) * scale
    scales = []
    while short >= CELL:
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


def nms(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union", plus_one: bool = False
) -> np.ndarray:
    """Indices kept, best score first. ``union``: IoU; ``min``: overlap / smaller area.

    Sizes are ``x2 - x1`` as in torchvision's NMS (stages 1 and 2 in facenet-pytorch), or
    ``x2 - x1 + 1`` with ``plus_one`` as in its numpy NMS of the final stage; a box is dropped
    when its overlap with a kept one is *greater* than ``threshold``.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    area = np.maximum(x2 - x1 + one, 0) * np.maximum(y2 - y1 + one, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = iw * ih
        if mode == "min":
            denom = np.minimum(area[i], area[rest])
        else:
            denom = area[i] + area[rest] - inter
        overlap = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[overlap <= threshold]
    return np.array(keep, np.int64)


def cell_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """PNet map -> rows ``[x1, y1, x2, y2, score, dx1, dy1, dx2, dy2]`` in image pixels.

    ``reg``: [4, H, W]; ``prob``: [H, W] face probability.
    """
    ys, xs = np.nonzero(prob >= threshold)
    if len(ys) == 0:
        return np.zeros((0, 9))
    x1 = np.floor((STRIDE * xs + 1) / scale)
    y1 = np.floor((STRIDE * ys + 1) / scale)
    x2 = np.floor((STRIDE * xs + CELL) / scale)
    y2 = np.floor((STRIDE * ys + CELL) / scale)
    return np.column_stack([x1, y1, x2, y2, prob[ys, xs], reg[:, ys, xs].T]).astype(np.float64)


def regress(boxes: np.ndarray, reg: np.ndarray, inclusive: bool) -> np.ndarray:
    """Move each box by its regression (fractions of its size).

    PNet's boxes measure size as ``x2 - x1``; RNet/ONet's as ``x2 - x1 + 1`` (``inclusive``),
    as the reference implementation does at each stage.
    """
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + (1 if inclusive else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if inclusive else 0)
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow the shorter side around the centre so each box is square (stage inputs are square)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised [N, 3, size, size] patches and the mask of boxes that had any pixels."""
    import cv2

    h, w = rgb.shape[:2]
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    # 1-based inclusive corners clipped to the image, as the reference does.
    x1, y1 = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    x2, y2 = np.minimum(b[:, 2], w), np.minimum(b[:, 3], h)
    ok = (x2 > x1 - 1) & (y2 > y1 - 1)
    out = np.empty((int(ok.sum()), size, size, 3), np.float32)
    for n, i in enumerate(np.nonzero(ok)[0]):
        patch = rgb[y1[i] - 1 : y2[i], x1[i] - 1 : x2[i]]
        out[n] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return normalise(out), ok


def normalise(nhwc: np.ndarray) -> np.ndarray:
    x = (nhwc.astype(np.float32) - np.float32(INPUT_MEAN)) * np.float32(INPUT_SCALE)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Cascade:
    """The three stages; ``detect(rgb)`` -> faces, best first."""

    def __init__(
        self,
        pnet: Stage,
        rnet: Stage,
        onet: Stage,
        *,
        min_size: int = MIN_SIZE,
        factor: float = FACTOR,
        thresholds: Sequence[float] = THRESHOLDS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.min_size, self.factor = min_size, factor
        self.thresholds = tuple(float(t) for t in thresholds)
        self.max_batch = max_batch
        pyramid_scales(100, 100, min_size, factor)  # validates the parameters now, not per request

    def _batched(self, stage: Stage, x: np.ndarray) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(x), self.max_batch):
            for k, v in stage(x[i : i + self.max_batch]).items():
                parts.setdefault(k, []).append(np.asarray(v))
        return {k: np.concatenate(v) for k, v in parts.items()}

    def proposals(self, rgb: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Stage 1: squared candidate boxes ``[N, 5]`` (x1, y1, x2, y2, score)."""
        import cv2

        thr = self.thresholds[0] if threshold is None else threshold
        h, w = rgb.shape[:2]
        found = []
        for s in pyramid_scales(h, w, self.min_size, self.factor):
            hs, ws = int(h * s + 1), int(w * s + 1)
            img = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
            out = self.pnet(normalise(img[None]))
            rows = cell_boxes(np.asarray(out["reg"])[0], np.asarray(out["prob"])[0, 1], s, thr)
            if len(rows):
                found.append(rows[nms(rows[:, :4], rows[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        rows = np.concatenate(found)
        rows = rows[nms(rows[:, :4], rows[:, 4], 0.7)]
        boxes = regress(rows[:, :4], rows[:, 5:9], inclusive=False)
        return np.column_stack([square(boxes), rows[:, 4]])

    def refine(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2 (RNet): kept, regressed, squared boxes ``[N, 5]``."""
        if len(boxes) == 0:
            return boxes
        x, ok = crops(rgb, boxes, 24)
        boxes = boxes[ok]
        if len(boxes) == 0:
            return np.zeros((0, 5))
        out = self._batched(self.rnet, x)
        score = out["prob"][:, 1]
        keep = score > self.thresholds[1]
        boxes, score, reg = boxes[keep, :4], score[keep], out["reg"][keep]
        pick = nms(boxes, score, 0.7)
        boxes = regress(boxes[pick], reg[pick], inclusive=True)
        return np.column_stack([square(boxes), score[pick]])

    def output(self, rgb: np.ndarray, boxes: np.ndarray, threshold: float | None = None) -> list[FaceBox]:
        """Stage 3 (ONet): final boxes with scores and five landmarks (``threshold`` overrides
        the ONet one: it is the request's detection threshold)."""
        if len(boxes) == 0:
            return []
        x, ok = crops(rgb, boxes, 48)
        boxes = boxes[ok]
        if len(boxes) == 0:
            return []
        out = self._batched(self.onet, x)
        score = out["prob"][:, 1]
        keep = score > (self.thresholds[2] if threshold is None else threshold)
        boxes, score, reg, lm = boxes[keep, :4], score[keep], out["reg"][keep], out["landmarks"][keep]
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        lx = bw[:, None] * lm[:, :5] + boxes[:, 0:1] - 1
        ly = bh[:, None] * lm[:, 5:10] + boxes[:, 1:2] - 1
        boxes = regress(boxes, reg, inclusive=True)
        pick = nms(boxes, score, 0.7, mode="min", plus_one=True)
        return [
            FaceBox(boxes[i].astype(np.float64), float(score[i]), np.stack([lx[i], ly[i]], axis=1).astype(np.float64))
            for i in pick
        ]

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> list[FaceBox]:
        return self.output(rgb, self.refine(rgb, self.proposals(rgb)), threshold)


def stage_from_engine(engine: Engine, output_names: Sequence[str]) -> Stage:
    """Adapt an engine (positional outputs) to a stage returning outputs by name."""
    names = list(output_names)
    input_name = engine.input_names[0]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        outs = engine.run({input_name: x})
        if len(outs) != len(names):
            from ..errors import ModelInvalid

            raise ModelInvalid(f"MTCNN stage returned {len(outs)} outputs, manifest names {names}")
        return dict(zip(names, outs))

    return run


def clip_box(box: np.ndarray, w: int, h: int) -> list[float]:
    """Box clipped to the image, as reported to clients."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return [max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)]


def box_area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
