"""Ultralytics YOLOv8's letterbox, confidence filter, greedy NMS and scale-back, in numpy, step for step as
Ultralytics' ``predict`` does them (docs/yolov8-pose.md; the facts in reference/ultralytics-pose.md).

Every rounding here is Python's ``round`` (half to even), as in Ultralytics, and the arithmetic
stays in float32 where Ultralytics' tensors are float32: the point is identical answers, not
merely close ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FILL = 114  # Ultralytics' letterbox padding value
MAX_NMS = 30000  # candidates kept (by score) before NMS, as Ultralytics' non_max_suppression
MAX_WH = 7680  # per-class box offset of class-aware NMS (Ultralytics' max_wh)


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``h0`` x ``w0`` lands in the ``h`` x ``w`` input."""

    h0: int
    w0: int
    h: int
    w: int

    @property
    def gain(self) -> float:
        return min(self.h / self.h0, self.w / self.w0)

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) of the resized image inside the padding."""
        r = self.gain
        return max(round(self.w0 * r), 1), max(round(self.h0 * r), 1)

    def padding(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the padding split in halves, the odd pixel at the bottom/right."""
        w, h = self.resized
        dw, dh = (self.w - w) / 2, (self.h - h) / 2
        return round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)

    def pad_back(self) -> tuple[int, int]:
        """(pad_x, pad_y) that scale-back subtracts (Ultralytics' scale_boxes/scale_coords)."""
        w, h = self.resized
        return round((self.w - w) / 2 - 0.1), round((self.h - h) / 2 - 0.1)

    def gains(self) -> tuple[float, float]:
        """(gain_x, gain_y) that scale-back divides by: each side's own rounded ratio, as Ultralytics
        8.4 scales back (not the one letterbox ratio: they differ by up to half a pixel per side)."""
        w, h = self.resized
        return w / self.w0, h / self.h0


def letterbox(rgb: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """The image resized into ``shape`` (h, w), aspect kept, padded with 114: CHW float32 in [0, 1]."""
    box = Letterbox(int(rgb.shape[0]), int(rgb.shape[1]), shape[0], shape[1])
    img = rgb
    if box.resized != (box.w0, box.h0):
        img = cv2.resize(rgb, box.resized, interpolation=cv2.INTER_LINEAR)
    top, bottom, left, right = box.padding()
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(FILL, FILL, FILL))
    chw = np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)
    return chw / np.float32(255.0), box


def candidates(pred: np.ndarray, nc: int, conf: float) -> np.ndarray:
    """One image's raw output [C, A] -> rows [x1, y1, x2, y2, score, cls, extras...] with score > conf.

    The best class score is the row's score (single-label, Ultralytics' default); the comparison is
    in float32, as a float32 tensor compares with a Python number.
    """
    rows = np.asarray(pred, np.float32).T
    cls_scores = rows[:, 4 : 4 + nc]
    score = cls_scores.max(axis=1)
    keep = score > np.float32(conf)
    rows, score = rows[keep], score[keep]
    cls = cls_scores[keep].argmax(axis=1).astype(np.float32)
    xy, half = rows[:, :2], rows[:, 2:4] / np.float32(2)
    boxes = np.concatenate([xy - half, xy + half], axis=1)
    return np.concatenate([boxes, score[:, None], cls[:, None], rows[:, 4 + nc :]], axis=1)


def nms(rows: np.ndarray, iou: float, max_det: int, agnostic: bool = False) -> np.ndarray:
    """Greedy NMS over candidate rows (best score first; a row is dropped when its IoU with a kept
    one is > ``iou``), at most ``max_det`` kept, best first.

    As torchvision's CPU kernel: areas and IoU in float32, compared with the threshold as a double;
    ties in score keep their anchor order. Classes are kept apart by offsetting boxes by
    class * 7680 (a no-op for the one class of a pose model) unless ``agnostic``.
    """
    if not len(rows):
        return rows
    order = np.argsort(-rows[:, 4], kind="stable")
    if len(order) > MAX_NMS:
        order = order[:MAX_NMS]
    rows = rows[order]
    offset = np.float32(0) if agnostic else rows[:, 5:6] * np.float32(MAX_WH)
    b = rows[:, :4] + offset
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(rows), bool)
    kept: list[int] = []
    for i in range(len(rows)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) >= max_det:
            break
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        if not len(rest):
            break
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            ovr = inter / (areas[i] + areas[rest] - inter)
        alive[rest[ovr.astype(np.float64) > iou]] = False
    return rows[kept]


def scale_back(rows: np.ndarray, kpt_shape: tuple[int, int], box: Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """Kept rows -> (boxes [N, 4], keypoints [N, K, D]) in the original image's pixels, clipped to it."""
    k, d = kpt_shape
    pad_x, pad_y = (np.float32(p) for p in box.pad_back())
    gain_x, gain_y = (np.float32(g) for g in box.gains())  # a float32 tensor divides by float32(g)
    boxes = rows[:, :4].copy()
    boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - pad_x) / gain_x).clip(0, box.w0)
    boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - pad_y) / gain_y).clip(0, box.h0)
    kpts = rows[:, 6 : 6 + k * d].reshape(len(rows), k, d).copy()
    kpts[..., 0] = ((kpts[..., 0] - pad_x) / gain_x).clip(0, box.w0)
    kpts[..., 1] = ((kpts[..., 1] - pad_y) / gain_y).clip(0, box.h0)
    return boxes, kpts
