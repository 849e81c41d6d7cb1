"""PaddleX object-detection postprocessing: [N,6] rows -> boxes per image.

Follows PaddleX 3.7's ``DetRunnerPredictor._format_output`` and ``DetPostProcess``: rows are
``[cls_id, score, x1, y1, x2, y2]`` in original-image pixels, split per image by the count
output; a row is kept when ``score > threshold`` (compared in float32, as numpy compares the
float32 scores) and ``cls_id > -1`` (exports pad empty results with a -1 row); boxes are clipped
to the image and dropped when degenerate. Order is the model's (score-sorted by NMS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelInvalid


@dataclass(frozen=True)
class DetBox:
    cls_id: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def xyxy(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


def read_labels(config: dict[str, Any]) -> tuple[str, ...]:
    labels = config.get("label_list")
    if not isinstance(labels, list) or not labels:
        raise ModelInvalid("detector inference.yml lacks 'label_list'")
    return tuple(str(x) for x in labels)


def default_threshold(config: dict[str, Any]) -> float:
    value = config.get("draw_threshold", 0.5)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelInvalid(f"draw_threshold must be a number, got {value!r}")
    return float(value)


def pick_outputs(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows [N,6], counts [B]) from the raw outputs.

    PaddleX takes them by position; we also accept the two in either order (some converters
    reorder outputs) by telling them apart by shape.
    """
    if len(outputs) < 2:
        raise ModelInvalid(f"detector returned {len(outputs)} output(s); expected boxes and box counts")
    a, b = np.asarray(outputs[0]), np.asarray(outputs[1])
    if a.ndim == 1 and b.ndim == 2:
        a, b = b, a
    if a.ndim != 2 or a.shape[1] < 6 or b.ndim != 1:
        raise ModelInvalid(f"detector outputs {a.shape} / {b.shape} are not [N,6] boxes and [B] counts")
    return a, b


def split_by_counts(rows: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    out, start = [], 0
    for count in counts.astype(np.int64):
        n = max(0, int(count))
        out.append(rows[start : start + n])
        start += n
    if start > len(rows):
        raise ModelInvalid(f"detector counts sum to {start} but only {len(rows)} rows came back")
    return out


def postprocess(rows: np.ndarray, img_w: int, img_h: int, threshold: float, labels: Sequence[str]) -> list[DetBox]:
    rows = np.asarray(rows, np.float32)[:, :6]
    keep = (rows[:, 1] > np.float32(threshold)) & (rows[:, 0] > -1)
    rows = rows[keep]
    rows = _drop_whole_image_boxes(rows, img_w, img_h, labels)
    boxes = []
    for cls_f, score, x1, y1, x2, y2 in rows.tolist():
        x1, y1 = max(0.0, x1), max(0.0, y1)
        x2, y2 = min(float(img_w), x2), min(float(img_h), y2)
        if x2 <= x1 or y2 <= y1:
            continue
        cls_id = int(cls_f)
        label = labels[cls_id] if 0 <= cls_id < len(labels) else str(cls_id)
        boxes.append(DetBox(cls_id, label, score, x1, y1, x2, y2))
    return boxes


def _drop_whole_image_boxes(rows: np.ndarray, img_w: int, img_h: int, labels: Sequence[str]) -> np.ndarray:
    """PaddleX's layout quirk: a class literally named "image" loses boxes covering most of the
    picture (82% for landscape, 93% otherwise) when other boxes exist; never all of them."""
    if "image" not in labels or len(rows) < 2:
        return rows
    image_id = labels.index("image")
    limit = (0.82 if img_w > img_h else 0.93) * img_w * img_h
    keep = []
    for r in rows:
        if int(r[0]) == image_id:
            area = (min(img_w, r[4]) - max(0, r[2])) * (min(img_h, r[5]) - max(0, r[3]))
            keep.append(area <= limit)
        else:
            keep.append(True)
    mask = np.array(keep, bool)
    return rows[mask] if mask.any() else rows
