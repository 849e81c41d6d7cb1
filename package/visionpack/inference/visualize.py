"""Skeleton drawing for keypoint results, the way PaddleX's KptResult renders them.

PaddleX (keypoint_detection/result.py) draws, without boxes: a radius-2 dot per keypoint whose
score reaches ``visual_thresh`` (0.1), coloured by keypoint index, then each COCO-17 limb whose
two ends both reach it as a thin filled ellipse blended 60 % over the picture, coloured by limb
index. Its palette is applied to a BGR image; we draw on RGB, so the palette is stored reversed
to produce the same colours. Unlike PaddleX, each limb is blended once for all persons instead
of once per person, which keeps 20+ persons cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..imaging import encode_jpeg_b64

VISUAL_THRESH = 0.1

COCO_EDGES = (
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (5, 11),
    (6, 12),
    (11, 13),
    (12, 14),
    (13, 15),
    (14, 16),
    (11, 12),
)

# PaddleX's 18-colour wheel, as the BGR triples it hands to cv2 on its BGR image.
_WHEEL_BGR = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
PALETTE_RGB = tuple((r, g, b) for b, g, r in _WHEEL_BGR)


def draw_skeletons(
    rgb: np.ndarray,
    keypoints: Sequence[np.ndarray],
    visual_thresh: float = VISUAL_THRESH,
    edges: Sequence[tuple[int, int]] = COCO_EDGES,
) -> np.ndarray:
    """A copy of ``rgb`` with every person's keypoints and limbs drawn."""
    import cv2

    canvas = np.ascontiguousarray(rgb).copy()
    kpts = [np.asarray(k, np.float32) for k in keypoints]
    if not kpts:
        return canvas
    n_joints = kpts[0].shape[0]
    for j in range(n_joints):
        colour = PALETTE_RGB[j % len(PALETTE_RGB)]
        for person in kpts:
            if person[j, 2] >= visual_thresh:
                cv2.circle(canvas, (int(person[j, 0]), int(person[j, 1])), 2, colour, thickness=-1)
    h, w = canvas.shape[:2]
    for e, (a, b) in enumerate(edges):
        if max(a, b) >= n_joints:
            continue
        polys = [
            _limb_polygon(p[a, :2], p[b, :2]) for p in kpts if p[a, 2] >= visual_thresh and p[b, 2] >= visual_thresh
        ]
        if not polys:
            continue
        # Blend only the rectangle the limbs touch: a full-image blend per limb would cost
        # 17 passes over a 4096 px picture.
        pts = np.concatenate(polys)
        x0, y0 = max(0, int(pts[:, 0].min())), max(0, int(pts[:, 1].min()))
        x1, y1 = min(w, int(pts[:, 0].max()) + 1), min(h, int(pts[:, 1].max()) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = canvas[y0:y1, x0:x1]
        layer = roi.copy()
        for poly in polys:
            cv2.fillConvexPoly(layer, poly - np.array([x0, y0], poly.dtype), PALETTE_RGB[e % len(PALETTE_RGB)])
        canvas[y0:y1, x0:x1] = cv2.addWeighted(roi, 0.4, layer, 0.6, 0)
    return canvas


def _limb_polygon(p: np.ndarray, q: np.ndarray, half_width: int = 1) -> np.ndarray:
    """An ellipse from p to q, ``half_width`` px thick, as a polygon (integer pixel grid)."""
    import cv2

    mid = (int((p[0] + q[0]) / 2), int((p[1] + q[1]) / 2))
    half_len = int(math.hypot(float(p[0] - q[0]), float(p[1] - q[1])) / 2)
    angle = int(math.degrees(math.atan2(float(p[1] - q[1]), float(p[0] - q[0]))))
    return np.asarray(cv2.ellipse2Poly(mid, (half_len, half_width), angle, 0, 360, 1))


def skeleton_jpeg_b64(rgb: np.ndarray, keypoints: Sequence[np.ndarray]) -> str:
    return encode_jpeg_b64(draw_skeletons(rgb, keypoints))
