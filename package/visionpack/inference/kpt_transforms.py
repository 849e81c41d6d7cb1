"""PaddleX top-down keypoint pre/post-processing (PP-TinyPose contract), batched.

Follows PaddleX 3.7's human_keypoint_detection pipeline and keypoint_detection processors:
box -> centre/scale widened to the model's input aspect and padded x1.25 -> affine warp of
that window to the input size (``TopDownEvalAffine``) -> NormalizeImage/Permute -> heatmaps
``[N,K,h,w]`` (first output) -> argmax + DARK (or the +-0.25 shift) -> inverse affine back to
image pixels; person score = mean of the keypoint peaks. Optional flip test: the W-flipped
input's heatmaps are flipped back, left/right joints swapped by ``flip_perm``, shifted right
by one pixel for PP-TinyPose, and averaged with the plain ones.

PaddleX sends each person through the model on its own; here every step works on all persons
of an image at once (one warp loop, one normalise, one model call per ``kpt_batch`` chunk, a
vectorised decoder). That removes the per-person call and Python overhead; the model's own
compute is shared across the batch only where the kernels batch (oneDNN; see
docs/keypoint-service.md, Benchmark).
Arithmetic is float32 where PaddleX's is, so results agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelInvalid
from .det_transforms import normalize_params, window_affine

PADDING = 1.25
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


@dataclass(frozen=True)
class KptSpec:
    input_w: int
    input_h: int
    alpha: np.ndarray
    beta: np.ndarray
    use_dark: bool = True
    flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS
    # PaddleX shifts flipped heatmaps one pixel right for PP-TinyPose models only.
    shift_heatmap: bool = False

    @property
    def aspect(self) -> float:
        return self.input_w / self.input_h


def read_spec(config: dict[str, Any], model_name: str) -> KptSpec:
    """Parse a keypoint yml: TopDownEvalAffine, then NormalizeImage and Permute."""
    ops = config.get("Preprocess")
    if not isinstance(ops, list) or not ops:
        raise ModelInvalid("keypoint inference.yml lacks a 'Preprocess' list")
    kinds = [op.get("type") if isinstance(op, dict) else None for op in ops]
    if (
        kinds[0] != "TopDownEvalAffine"
        or kinds[-1] != "Permute"
        or any(k not in ("TopDownEvalAffine", "NormalizeImage", "Permute") for k in kinds)
    ):
        raise ModelInvalid(f"keypoint Preprocess must be TopDownEvalAffine, NormalizeImage, Permute; got {kinds}")
    affine = ops[0]
    size = affine.get("trainsize")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ModelInvalid(f"TopDownEvalAffine.trainsize must be [w, h] ints, got {size!r}")
    if affine.get("use_udp"):
        raise ModelInvalid("TopDownEvalAffine with use_udp is not supported; export without UDP")
    norm = [op for op in ops if op.get("type") == "NormalizeImage"]
    if norm:
        alpha, beta = normalize_params(norm[0])
    else:
        alpha, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    pairs = config.get("flip_perm") or COCO_FLIP_PAIRS
    try:
        flip_pairs = tuple((int(a), int(b)) for a, b in pairs)
    except (TypeError, ValueError):
        raise ModelInvalid(f"flip_perm must be a list of index pairs, got {pairs!r}") from None
    use_dark = config.get("use_dark", True)
    return KptSpec(
        int(size[0]), int(size[1]), alpha, beta, bool(use_dark), flip_pairs, shift_heatmap="PP-TinyPose" in model_name
    )


def box_to_center_scale(
    boxes: Sequence[Sequence[float]], aspect: float, padding: float = PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N,4] xyxy -> centres [N,2] and window sizes [N,2] (w, h) in pixels, float32.

    The shorter relative side grows until w/h equals the model input's aspect, then both grow
    by ``padding``; no pixel_std/200 (PaddleX 3 drops it). float32 as PaddleX computes it.
    """
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    center = (b[:, 0:2] + b[:, 2:4]) * np.float32(0.5)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    a = np.float32(aspect)
    wider = w > a * h
    taller = w < a * h
    h = np.where(wider, w / a, h)
    w = np.where(taller, h * a, w)
    scale = np.stack([w, h], 1) * np.float32(padding)
    return center.astype(np.float32), scale.astype(np.float32)


def crop_inputs(rgb: np.ndarray, centers: np.ndarray, scales: np.ndarray, spec: KptSpec) -> np.ndarray:
    """Warp each window to the input size and normalise: [N,3,H,W] float32."""
    import cv2

    size = (spec.input_w, spec.input_h)
    crops = np.empty((len(centers), spec.input_h, spec.input_w, 3), np.uint8)
    for i, (c, s) in enumerate(zip(centers, scales)):
        trans = window_affine(c, float(s[0]), size)
        crops[i] = cv2.warpAffine(rgb, trans, size, flags=cv2.INTER_LINEAR)
    # Permute the uint8 crops (4x less memory to move), then one multiply-add into the float
    # output: the same float32 x * alpha + beta as PaddleX, without two float copies.
    chw = np.ascontiguousarray(crops.transpose(0, 3, 1, 2))
    x = np.multiply(chw, spec.alpha[None, :, None, None], dtype=np.float32)
    x += spec.beta[None, :, None, None]
    return x


def flip_back(flipped: np.ndarray, pairs: Sequence[tuple[int, int]], shift: bool) -> np.ndarray:
    """Heatmaps of W-flipped inputs -> heatmaps in the unflipped frame."""
    out = flipped[:, :, :, ::-1].copy()
    for a, b in pairs:
        out[:, [a, b]] = out[:, [b, a]]
    if shift:
        # The flip maps pixel x to W-1-x in the input but the heatmap grid is coarser, which
        # leaves a one-cell bias; PaddleX corrects it for PP-TinyPose by moving right by one.
        out[:, :, :, 1:] = out[:, :, :, :-1].copy()
    return out


def merge_flip(plain: np.ndarray, flipped: np.ndarray, spec: KptSpec) -> np.ndarray:
    k = plain.shape[1]
    if any(max(a, b) >= k for a, b in spec.flip_pairs):
        raise ModelInvalid(
            f"flip_perm {list(spec.flip_pairs)} does not fit a model with {k} keypoints; "
            "set flip_perm in inference.yml or turn the flip test off"
        )
    return (plain + flip_back(flipped, spec.flip_pairs, spec.shift_heatmap)) * np.float32(0.5)


def max_preds(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax (x, y) per map [N,K,2] float32 and the peak values [N,K]; (0, 0) where peak <= 0."""
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(2)
    vals = flat.max(2)
    coords = np.stack([idx % w, idx // w], -1).astype(np.float32)
    coords *= (vals > 0)[..., None].astype(np.float32)
    return coords, vals


def _blur_rescaled(hm: np.ndarray) -> np.ndarray:
    """3x3 Gaussian (cv2's ksize-3 kernel [.25,.5,.25]) with a zero border, rescaled so each
    map keeps its original peak: DARK's smoothing step."""
    k = np.array([0.25, 0.5, 0.25])
    p = np.pad(hm.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows = k[0] * p[..., :, :-2] + k[1] * p[..., :, 1:-1] + k[2] * p[..., :, 2:]
    b = (k[0] * rows[..., :-2, :] + k[1] * rows[..., 1:-1, :] + k[2] * rows[..., 2:, :]).astype(np.float32)
    peak = hm.max(axis=(2, 3), keepdims=True)
    bmax = b.max(axis=(2, 3), keepdims=True)
    # An all-zero map would divide by zero (PaddleX then returns NaN); leave such maps as they are.
    ratio = np.divide(peak, bmax, out=np.ones_like(peak), where=bmax != 0)
    return b * ratio


def dark_refine(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Second-order Taylor step on the log of the smoothed heatmap around each argmax."""
    n, k, h, w = hm.shape
    lg = np.log(np.maximum(_blur_rescaled(hm), np.float32(1e-10)))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    # Clamp indices for the masked-out points so the gathers below stay in range.
    x = np.clip(px, 2, max(2, w - 3))
    y = np.clip(py, 2, max(2, h - 3))
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return lg[ni, ki, np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)]

    half, quarter = np.float32(0.5), np.float32(0.25)
    c = at(0, 0)
    dx = half * (at(0, 1) - at(0, -1))
    dy = half * (at(1, 0) - at(-1, 0))
    dxx = quarter * (at(0, 2) - 2 * c + at(0, -2))
    dxy = quarter * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = quarter * (at(2, 0) - 2 * c + at(-2, 0))
    det = dxx * dyy - dxy * dxy
    ok &= det != 0
    safe = np.where(ok, det, np.float32(1))
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    out = coords.copy()
    out[..., 0] += np.where(ok, off_x, 0).astype(np.float32)
    out[..., 1] += np.where(ok, off_y, 0).astype(np.float32)
    return out


def quarter_shift(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Without DARK: move 0.25 cell toward the higher neighbour on each axis."""
    n, k, h, w = hm.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    x = np.clip(px, 1, w - 2)
    y = np.clip(py, 1, h - 2)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    ddx = hm[ni, ki, y, x + 1] - hm[ni, ki, y, x - 1]
    ddy = hm[ni, ki, y + 1, x] - hm[ni, ki, y - 1, x]
    out = coords.copy()
    out[..., 0] += np.where(ok, np.sign(ddx) * 0.25, 0).astype(np.float32)
    out[..., 1] += np.where(ok, np.sign(ddy) * 0.25, 0).astype(np.float32)
    return out


def decode(
    heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray, use_dark: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps [N,K,h,w] -> keypoints [N,K,3] (x, y, peak) in image pixels and scores [N]."""
    hm = np.asarray(heatmaps, np.float32)
    if hm.ndim != 4:
        raise ModelInvalid(f"keypoint model returned {hm.shape}; expected heatmaps [N,K,h,w]")
    n, k, h, w = hm.shape
    coords, vals = max_preds(hm)
    coords = dark_refine(hm, coords) if use_dark else quarter_shift(hm, coords)
    out = np.empty((n, k, 3), np.float32)
    for i in range(n):
        inv = window_affine(centers[i], float(scales[i][0]), (w, h), inv=True)
        out[i, :, :2] = coords[i].astype(np.float64) @ inv[:, :2].T + inv[:, 2]
    out[:, :, 2] = vals
    return out, vals.mean(axis=1) if k else np.zeros(n, np.float32)


def keypoint_heatmaps(outputs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """The heatmap output (PaddleX uses the first; exports add an argmax second output)."""
    if not outputs:
        raise ModelInvalid("keypoint model returned no outputs")
    hm = np.asarray(outputs[0])
    if hm.ndim != 4 or hm.shape[0] != n:
        raise ModelInvalid(f"keypoint model returned {hm.shape} for {n} crops; expected [N,K,h,w]")
    return hm.astype(np.float32, copy=False)
