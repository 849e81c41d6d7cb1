"""Face chips for the feature model: landmark alignment, or PaddleX's plain crop.

PaddleX's face pipeline crops the detector's box (``img[int(y1):int(y2), int(x1):int(x2)]``)
and lets the feature model squash it to its input size: no landmarks, no margin. Feature models
are trained on *aligned* faces, so when the detector gives five landmarks (MTCNN does) we map
them onto the feature model's template with the least-squares similarity transform (Umeyama
1991: rotation, uniform scale, translation; no shear, so faces keep their proportions) and warp
the chip directly at the model's input size -- one interpolation, no intermediate crop.

The template comes from the feature bundle's ``manifest.json`` ``alignment`` (points in chip
pixels, order left eye, right eye, nose, left and right mouth corner, as seen in the image).
Bundles without one (a user's PaddleX MobileFaceNet export) get the widely used 112x112 ArcFace
five-point template, scaled to the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelInvalid

# The standard 112x112 five-point template of ArcFace-style feature models (x, y in pixels).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float64,
)


@dataclass(frozen=True)
class Template:
    points: np.ndarray  # [5, 2] float64, chip pixel coordinates
    size: tuple[int, int]  # (w, h) of the chip


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 similarity matrix minimising sum |s·R·src + t - dst|^2 (reflections excluded)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching [N>=2, 2] point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide; no transform")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    # Force a proper rotation: a mirrored face is not the same face.
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def template_for(manifest: dict[str, Any], input_size: tuple[int, int]) -> Template:
    """The bundle's own template, else ArcFace's scaled to ``input_size`` (w, h)."""
    al = manifest.get("alignment") if isinstance(manifest, dict) else None
    if al:
        try:
            pts = np.array(al["points"], np.float64)
            w, h = (int(v) for v in al["size"])
        except (KeyError, TypeError, ValueError):
            raise ModelInvalid("manifest alignment needs 'points' (5 x [x, y]) and 'size' [w, h]") from None
        if pts.shape != (5, 2) or w < 8 or h < 8:
            raise ModelInvalid(
                f"manifest alignment points must be 5 x [x, y] and size >= 8 px, got {pts.shape} / {w}x{h}"
            )
        return Template(pts, (w, h))
    w, h = input_size
    return Template(ARCFACE_112 * np.array([w / 112.0, h / 112.0]), (int(w), int(h)))


def align(rgb: np.ndarray, landmarks: np.ndarray, template: Template) -> np.ndarray:
    """The chip (h, w, 3) uint8 with the five landmarks moved onto the template."""
    import cv2

    m = umeyama(np.asarray(landmarks, np.float64).reshape(5, 2), template.points)
    # Bilinear, black outside the image (faces at the border keep their geometry).
    return cv2.warpAffine(rgb, m, template.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop(rgb: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
    """PaddleX's ``CropByBoxes``: integer-truncated box, no margin; None when empty."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    return rgb[y1:y2, x1:x2]


def chip(rgb: np.ndarray, box: Sequence[float], landmarks: np.ndarray | None, template: Template) -> np.ndarray | None:
    """Aligned chip when landmarks exist, else PaddleX's crop (resized later by the model's ops)."""
    if landmarks is not None:
        try:
            return align(rgb, landmarks, template)
        except ValueError:
            pass  # degenerate landmarks (all on one point): fall back to the box
    return crop(rgb, box)
