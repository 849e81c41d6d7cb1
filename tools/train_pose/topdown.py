"""PaddleX top-down keypoint pre/post-processing in plain numpy + cv2 (training and evaluation only).

Mirrors what PaddleX's human_keypoint_detection pipeline does at inference
(reference/paddlex.md §2 "Top-down keypoints"): detector box -> centre/scale widened to the
input aspect and padded x1.25 -> affine warp to the input size -> heatmaps -> argmax + DARK ->
inverse affine back to image pixels. Training crops go through the same functions, so the
keypoint model sees at train time exactly what it is fed at inference.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

INPUT_W, INPUT_H = 96, 128  # PP-TinyPose_128x96 trainsize [w, h]
HEATMAP_W, HEATMAP_H = 24, 32
PADDING = 1.25
MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])


def box_to_center_scale(
    box: np.ndarray, aspect: float = INPUT_W / INPUT_H, padding: float = PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and [w, h] scale in pixels, widened to ``aspect`` (w/h) and padded, as PaddleX."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    center = np.array([(x1 + x2) * 0.5, (y1 + y2) * 0.5], np.float32)
    w, h = x2 - x1, y2 - y1
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h], np.float32) * padding


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], np.float32)


def get_affine_transform(
    center: np.ndarray, scale: np.ndarray, rot: float, output_size: tuple[int, int], inv: bool = False
) -> np.ndarray:
    """2x3 matrix taking the box window (``scale`` wide, rotated by ``rot`` degrees) to ``output_size``."""
    src_w = float(scale[0])
    dst_w, dst_h = output_size
    r = math.radians(rot)
    sn, cs = math.sin(r), math.cos(r)
    src_dir = np.array([0.0 * cs - (-0.5 * src_w) * sn, 0.0 * sn + (-0.5 * src_w) * cs], np.float32)
    dst_dir = np.array([0.0, -0.5 * dst_w], np.float32)
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + src_dir
    src[2] = _third_point(src[0], src[1])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def apply_affine(points: np.ndarray, trans: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return pts @ trans[:, :2].T.astype(np.float32) + trans[:, 2].astype(np.float32)


def warp_crop(
    image: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    rot: float = 0.0,
    size: tuple[int, int] = (INPUT_W, INPUT_H),
) -> tuple[np.ndarray, np.ndarray]:
    """TopDownEvalAffine: the crop (H, W, 3) and the image->crop matrix."""
    trans = get_affine_transform(center, scale, rot, size)
    return cv2.warpAffine(image, trans, size, flags=cv2.INTER_LINEAR), trans


def normalize(crops: np.ndarray) -> np.ndarray:
    """NormalizeImage(is_scale, mean, std) + Permute on a batch [N,H,W,3] uint8 RGB -> [N,3,H,W] f32."""
    x = (crops.astype(np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(2)
    maxvals = flat.max(2)[..., None]
    preds = np.stack([idx % w, idx // w], -1).astype(np.float32)
    preds *= maxvals > 0.0
    return preds, maxvals


def _blur(heatmaps: np.ndarray, kernel: int = 3) -> np.ndarray:
    border = (kernel - 1) // 2
    out = heatmaps.copy()
    n, k, h, w = heatmaps.shape
    for i in range(n):
        for j in range(k):
            peak = heatmaps[i, j].max()
            padded = np.zeros((h + 2 * border, w + 2 * border), np.float32)
            padded[border:-border, border:-border] = heatmaps[i, j]
            b = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            out[i, j] = b * (peak / b.max()) if b.max() != 0 else b
    return out


def _dark_refine(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    h, w = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < w - 2 and 1 < py < h - 2:
        dx = 0.5 * (hm[py, px + 1] - hm[py, px - 1])
        dy = 0.5 * (hm[py + 1, px] - hm[py - 1, px])
        dxx = 0.25 * (hm[py, px + 2] - 2 * hm[py, px] + hm[py, px - 2])
        dxy = 0.25 * (hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1] + hm[py - 1, px - 1])
        dyy = 0.25 * (hm[py + 2, px] - 2 * hm[py, px] + hm[py - 2, px])
        det = dxx * dyy - dxy * dxy
        if det != 0:
            hess_inv = np.array([[dyy, -dxy], [-dxy, dxx]]) / det
            coord = coord - hess_inv @ np.array([dx, dy])
    return coord


def decode_heatmaps(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray, use_dark: bool = True) -> np.ndarray:
    """Heatmaps [N,K,h,w] -> keypoints [N,K,3] (x, y, maxval) in image pixels."""
    heatmaps = np.asarray(heatmaps, np.float32)
    n, k, h, w = heatmaps.shape
    coords, maxvals = get_max_preds(heatmaps)
    if use_dark:
        logs = np.log(np.maximum(_blur(heatmaps), 1e-10))
        for i in range(n):
            for j in range(k):
                coords[i, j] = _dark_refine(logs[i, j], coords[i, j])
    else:
        for i in range(n):
            for j in range(k):
                px, py = int(math.floor(coords[i, j, 0] + 0.5)), int(math.floor(coords[i, j, 1] + 0.5))
                if 1 < px < w - 1 and 1 < py < h - 1:
                    hm = heatmaps[i, j]
                    diff = np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                    coords[i, j] += np.sign(diff) * 0.25
    out = np.zeros((n, k, 3), np.float32)
    for i in range(n):
        trans = get_affine_transform(centers[i], scales[i], 0, (w, h), inv=True)
        out[i, :, :2] = apply_affine(coords[i], trans)
    out[:, :, 2] = maxvals[:, :, 0]
    return out


def gaussian_targets(
    kpts_in: np.ndarray, weights: np.ndarray, sigma: float = 2.0, stride: float = INPUT_W / HEATMAP_W
) -> np.ndarray:
    """Gaussian heatmap targets [K,hm_h,hm_w] (peak 1 at the sub-pixel joint position)."""
    k = kpts_in.shape[0]
    ys, xs = np.mgrid[0:HEATMAP_H, 0:HEATMAP_W].astype(np.float32)
    t = np.zeros((k, HEATMAP_H, HEATMAP_W), np.float32)
    for j in range(k):
        if weights[j] <= 0:
            continue
        cx, cy = kpts_in[j, 0] / stride, kpts_in[j, 1] / stride
        t[j] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
    return t
