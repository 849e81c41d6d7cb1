"""Procedural scenes of articulated human figures on the COCO-17 skeleton, with ground truth.

Each figure is a 3D stick skeleton (random proportions and joint angles within human limits),
rotated about the vertical axis (yaw) and in the image plane, projected orthographically and
drawn as tapered, textured body parts in depth order. A label map records which figure part
owns every pixel, so visibility comes out of the rendering itself: a keypoint is visible (v=2)
when the pixel under it belongs to one of that joint's own parts, labelled-but-hidden (v=1)
when another part, figure or object covers it, and unlabelled (v=0, coordinates 0) when it
falls outside the image, as COCO annotates. Everything is drawn from one seeded Generator, so
a seed always gives the same scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# 1.1.0: left/right cues that do not depend on the face alone (docs/pose-models.md "The scenes"):
# a V neckline on the front of the torso, a nose that sticks out of the head in profile, hair
# that always contrasts with the skin (so the back of the head reads as the back).
GENERATOR_VERSION = "1.1.0"

KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


def _flip_index() -> list[int]:
    idx = list(range(17))
    for a, b in FLIP_PAIRS:
        idx[a], idx[b] = b, a
    return idx


# The same exchange as an index list: keypoints[FLIP_INDEX] swaps every left joint with its right.
FLIP_INDEX = _flip_index()
SKELETON = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

# Body parts and the keypoints each one carries (for the visibility test).
PARTS = {
    "head": (0, 1, 2, 3, 4),
    "neck": (),
    "torso": (5, 6, 11, 12),
    "l_uarm": (5, 7),
    "l_farm": (7, 9),
    "l_hand": (9,),
    "r_uarm": (6, 8),
    "r_farm": (8, 10),
    "r_hand": (10,),
    "l_thigh": (11, 13),
    "l_shin": (13, 15),
    "l_foot": (15,),
    "r_thigh": (12, 14),
    "r_shin": (14, 16),
    "r_foot": (16,),
}
PART_IDS = {name: i + 1 for i, name in enumerate(PARTS)}
OCCLUDER_LABEL = -1


@dataclass
class Person:
    bbox: np.ndarray  # [x1, y1, x2, y2] float32, amodal silhouette clipped to the image
    keypoints: np.ndarray  # [17, 3] float32: x, y, v (0 unlabelled, 1 hidden, 2 visible)
    area: float  # silhouette pixels inside the image (OKS scale, as COCO's segment area)


# ----------------------------------------------------------------------------- geometry


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


def _rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / (np.linalg.norm(axis) + 1e-12)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _limb_dirs(rng: np.random.Generator, side: float, arm: bool, style: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions of the upper and lower segment of one limb in body coordinates.

    Body frame: x = the figure's left, y = up, z = forward (toward the camera at yaw 0).
    """
    down = np.array([0.0, -1.0, 0.0])
    if arm:
        lift = {"rest": (0, 35), "wide": (0, 175), "walk": (0, 50)}[style]
        elev = math.radians(rng.uniform(*lift))
        az = math.radians(rng.uniform(-60, 120))  # 0 = sideways out, 90 = forward
        out = np.array([side * math.cos(az), 0.0, math.sin(az)])
        upper = math.cos(elev) * down + math.sin(elev) * out
        flex = math.radians(rng.uniform(0, {"rest": 60, "wide": 145, "walk": 90}[style]))
        # the elbow bends the forearm forward/inward; tilt the axis randomly a little
        axis = np.cross(upper, np.array([side * 0.3, 0.0, 1.0]) + rng.normal(0, 0.3, 3))
        lower = _rodrigues(axis, -flex) @ upper
    else:
        hip_flex = math.radians(
            {"rest": rng.uniform(-10, 25), "wide": rng.uniform(-30, 100), "walk": rng.uniform(-35, 45)}[style]
        )
        abd = math.radians(rng.uniform(-8, {"rest": 15, "wide": 45, "walk": 12}[style]))
        upper = _rot_x(-hip_flex) @ down  # flexion swings the thigh forward (+z)
        upper = _rodrigues(np.array([0.0, 0.0, 1.0]), side * abd) @ upper
        knee = math.radians(rng.uniform(0, {"rest": 30, "wide": 140, "walk": 80}[style]))
        lower = _rot_x(knee) @ upper  # the knee folds the shin backward
        lower = _rodrigues(np.array([0.0, 0.0, 1.0]), side * abd * 0.3) @ lower
    return upper / np.linalg.norm(upper), lower / np.linalg.norm(lower)


def _skeleton_3d(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    """17 joints in body coordinates (unit ~ standing height) and the proportions used."""
    p = {
        "hip_w": rng.uniform(0.075, 0.11),
        "sh_w": rng.uniform(0.09, 0.14),
        "torso": rng.uniform(0.27, 0.33),
        "neck": rng.uniform(0.04, 0.07),
        "head_r": rng.uniform(0.055, 0.075),
        "uarm": rng.uniform(0.16, 0.2),
        "farm": rng.uniform(0.14, 0.17),
        "thigh": rng.uniform(0.22, 0.27),
        "shin": rng.uniform(0.21, 0.26),
    }
    style = rng.choice(["rest", "walk", "wide"], p=[0.35, 0.35, 0.3])
    j = np.zeros((17, 3))
    bend = _rot_x(math.radians(rng.uniform(-10, 35 if style == "wide" else 15))) @ _rodrigues(
        np.array([0.0, 0.0, 1.0]), math.radians(rng.uniform(-12, 12))
    )
    spine = bend @ np.array([0.0, 1.0, 0.0])
    j[11], j[12] = (p["hip_w"], 0, 0), (-p["hip_w"], 0, 0)
    sh_c = spine * p["torso"]
    across = bend @ np.array([1.0, 0.0, 0.0])
    j[5], j[6] = sh_c + across * p["sh_w"], sh_c - across * p["sh_w"]
    head_tilt = _rot_x(math.radians(rng.uniform(-20, 25))) @ _rot_y(math.radians(rng.uniform(-40, 40)))
    head_c = sh_c + spine * (p["neck"] + p["head_r"])
    fwd, up, left = head_tilt @ (bend @ np.array([0, 0, 1.0])), head_tilt @ spine, head_tilt @ across
    r = p["head_r"]
    j[0] = head_c + r * (0.95 * fwd - 0.2 * up)
    j[1] = head_c + r * (0.75 * fwd + 0.15 * up + 0.38 * left)
    j[2] = head_c + r * (0.75 * fwd + 0.15 * up - 0.38 * left)
    j[3], j[4] = head_c + r * 0.97 * left, head_c - r * 0.97 * left
    for side, (s, e, w) in ((1.0, (5, 7, 9)), (-1.0, (6, 8, 10))):
        u, lo = _limb_dirs(rng, side, True, style)
        j[e] = j[s] + (bend @ u) * p["uarm"]
        j[w] = j[e] + (bend @ lo) * p["farm"]
    legs = {}
    for side, (h, k, a) in ((1.0, (11, 13, 15)), (-1.0, (12, 14, 16))):
        legs[side] = _limb_dirs(rng, side, False, style)
        u, lo = legs[side]
        j[k] = j[h] + u * p["thigh"]
        j[a] = j[k] + lo * p["shin"]
    p["head_c"] = head_c  # type: ignore[assignment]
    # the neckline's corners on the chest surface (body frame): only the front of the torso has one
    chest = bend @ np.array([0.0, 0.0, 1.0])
    p["collar"] = np.stack(
        [
            sh_c + across * 0.55 * p["sh_w"] + chest * 0.035,  # type: ignore[assignment]
            sh_c - across * 0.55 * p["sh_w"] + chest * 0.035,
            sh_c - spine * rng.uniform(0.06, 0.1) + chest * 0.045,
        ]
    )
    p["chest"] = chest  # type: ignore[assignment]
    p["head_fwd"] = fwd  # type: ignore[assignment]
    p["head_up"] = up  # type: ignore[assignment]
    return j, p


# ----------------------------------------------------------------------------- textures


def _colour(rng: np.random.Generator, sat=(0.2, 1.0), val=(0.2, 1.0)) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), int(255 * rng.uniform(*sat)), int(255 * rng.uniform(*val))]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _skin(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.15:  # painted / gloved figures keep the model from keying on one hue
        return _colour(rng)
    t = rng.uniform(0, 1)
    light, dark = np.float32([236, 200, 170]), np.float32([80, 50, 35])
    return light * (1 - t) + dark * t + rng.normal(0, 8, 3).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A clothing-like RGB float32 texture: solid, stripes, checks, blotches or a gradient."""
    c1, c2 = _colour(rng), _colour(rng)
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 0:
        m = np.zeros((h, w), np.float32)
    elif kind == 1:
        ang, period = rng.uniform(0, math.pi), rng.uniform(4, 16)
        m = ((np.cos(ang) * xx + np.sin(ang) * yy) % period < period / 2).astype(np.float32)
    elif kind == 2:
        s = rng.uniform(4, 14)
        m = (((xx // s) + (yy // s)) % 2).astype(np.float32)
    elif kind == 3:
        small = rng.random((max(2, h // 12), max(2, w // 12))).astype(np.float32)
        m = (cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
    else:
        m = yy / max(h - 1, 1)
    tex = c1[None, None] * (1 - m[..., None]) + c2[None, None] * m[..., None]
    return tex + rng.normal(0, rng.uniform(0, 10), (h, w, 1)).astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    c1, c2 = _colour(rng), _colour(rng)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(ang) * xx / w + np.sin(ang) * yy / h
    t = (t - t.min()) / (np.ptp(t) + 1e-6)
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    low = cv2.resize(rng.normal(0, 30, (4, 4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = img + low
    for _ in range(int(rng.integers(4, 30))):  # clutter: shapes, lines, blobs, textured patches
        col = tuple(float(c) for c in _colour(rng))
        x, y = int(rng.integers(-20, w)), int(rng.integers(-20, h))
        s = int(rng.integers(5, max(6, min(h, w) // 3)))
        k = rng.integers(0, 5)
        if k == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 3))), col, -1)
        elif k == 1:
            cv2.circle(img, (x, y), s // 2, col, -1)
        elif k == 2:
            cv2.line(img, (x, y), (int(rng.integers(0, w)), int(rng.integers(0, h))), col, int(rng.integers(1, 12)))
        elif k == 3:
            pts = (np.array([x, y]) + rng.integers(-s, s, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], col)
        else:
            hh, ww = int(rng.integers(8, max(9, h // 2))), int(rng.integers(8, max(9, w // 2)))
            y0, x0 = int(rng.integers(0, max(1, h - hh))), int(rng.integers(0, max(1, w - ww)))
            img[y0 : y0 + hh, x0 : x0 + ww] = _texture(rng, hh, ww)[: h - y0, : w - x0]
    return img


# ----------------------------------------------------------------------------- rendering


def _capsule(mask: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> None:
    d = b - a
    n = np.linalg.norm(d)
    if n < 1e-6:
        cv2.circle(mask, tuple(np.round(a).astype(int)), max(1, int(round(max(ra, rb)))), 1, -1)
        return
    perp = np.array([-d[1], d[0]]) / n
    quad = np.array([a + perp * ra, b + perp * rb, b - perp * rb, a - perp * ra])
    cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 1)
    cv2.circle(mask, tuple(np.round(a).astype(int)), max(1, int(round(ra))), 1, -1)
    cv2.circle(mask, tuple(np.round(b).astype(int)), max(1, int(round(rb))), 1, -1)


class _Canvas:
    """The scene image plus the label map of which figure part owns each pixel."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self.labels = np.zeros(img.shape[:2], np.int32)
        self.h, self.w = img.shape[:2]

    def window(self, x0: int, y0: int, x1: int, y1: int) -> _Canvas:
        """A canvas over a sub-rectangle that writes through to this one (numpy views)."""
        sub = _Canvas.__new__(_Canvas)
        sub.img, sub.labels = self.img[y0:y1, x0:x1], self.labels[y0:y1, x0:x1]
        sub.h, sub.w = sub.img.shape[:2]
        return sub

    def paint(self, mask: np.ndarray, colour: np.ndarray, label: int, outline: float | None = None) -> None:
        sel = mask.astype(bool)
        if not sel.any():
            return
        if outline is not None:  # a darker rim separates overlapping limbs of the same colour
            rim = sel & ~cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
        src = colour[sel] if colour.ndim == 3 else colour
        self.img[sel] = src
        if outline is not None:
            self.img[rim] *= outline
        self.labels[sel] = label


def _render_figure(
    cv: _Canvas, rng: np.random.Generator, fig: int, height_px: float, centre: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one figure; return its projected keypoints [17,2] and its amodal silhouette mask."""
    j3, p = _skeleton_3d(rng)
    yaw_r = rng.random()
    yaw = (
        rng.uniform(-50, 50)
        if yaw_r < 0.5
        else (rng.uniform(50, 130) * rng.choice([-1, 1]) if yaw_r < 0.75 else rng.uniform(130, 230))
    )
    rot = _rot_y(math.radians(yaw))
    roll = math.radians(rng.normal(0, 8) if rng.random() < 0.9 else rng.uniform(-60, 60))
    pts3 = j3 @ rot.T
    head_c = rot @ p["head_c"]
    fwd = rot @ p["head_fwd"]
    depth = pts3[:, 2]
    lo_y, hi_y = min(pts3[:, 1].min(), pts3[15:, 1].min()), head_c[1] + p["head_r"]
    scale = height_px / max(hi_y - lo_y, 0.3)
    mid = np.array([0.0, (hi_y + lo_y) / 2])
    c, s = math.cos(roll), math.sin(roll)
    r2 = np.array([[c, -s], [s, c]])

    def proj(v: np.ndarray) -> np.ndarray:
        xy = (np.atleast_2d(v)[:, :2] - mid) * np.array([1.0, -1.0]) * scale
        return xy @ r2.T + np.array(centre)

    kp = proj(pts3)
    hc = proj(head_c)[0]
    # draw inside the figure's own window only: textures and masks cost its area, not the image's
    margin = 0.2 * height_px
    x0 = int(np.clip(kp[:, 0].min() - margin, 0, cv.w - 2))
    y0 = int(np.clip(kp[:, 1].min() - margin, 0, cv.h - 2))
    x1, y1 = int(min(cv.w, kp[:, 0].max() + margin)) + 1, int(min(cv.h, kp[:, 1].max() + margin)) + 1
    full = cv
    cv = cv.window(x0, y0, max(x1, x0 + 2), max(y1, y0 + 2))
    off = np.array([x0, y0], np.float64)
    kp, hc = kp - off, hc - off
    px = lambda u: max(1.0, u * scale)  # noqa: E731
    thick = rng.uniform(0.75, 1.35)
    limb_r = {"uarm": 0.035 * thick, "farm": 0.028 * thick, "thigh": 0.05 * thick, "shin": 0.037 * thick}
    skin, top, bottom = _skin(rng), _texture(rng, cv.h, cv.w), _texture(rng, cv.h, cv.w)
    shoe = _colour(rng, val=(0.05, 0.6))
    long_sleeve, long_leg = rng.random() < 0.5, rng.random() < 0.65
    hair = _colour(rng, sat=(0.0, 0.7), val=(0.05, 0.6)) if rng.random() < 0.85 else skin * 0.7
    if np.abs(hair - skin).sum() < 120:  # hair the colour of the face would hide which way the head faces
        hair = hair * 0.35 if skin.mean() > 100 else np.minimum(hair + 110, 255)
    outline = rng.uniform(0.55, 0.85)
    pieces: list[tuple[float, str, np.ndarray, np.ndarray]] = []  # (depth, part, mask, colour)

    def mask() -> np.ndarray:
        return np.zeros((cv.h, cv.w), np.uint8)

    def limb(name: str, a: int, b: int, ra: float, rb: float, colour: np.ndarray) -> None:
        m = mask()
        _capsule(m, kp[a], kp[b], px(ra), px(rb))
        pieces.append(((depth[a] + depth[b]) / 2, name, m, colour))

    m = mask()  # torso: convex hull of discs at shoulders and hips
    ring = np.stack([np.cos(np.linspace(0, 2 * np.pi, 12)), np.sin(np.linspace(0, 2 * np.pi, 12))], 1)
    hull_pts = np.concatenate([kp[k] + ring * px(0.055 * thick) for k in (5, 6, 11, 12)])
    cv2.fillConvexPoly(m, cv2.convexHull(np.round(hull_pts).astype(np.int32)), 1)
    pieces.append((float(depth[[5, 6, 11, 12]].mean()) - 0.01, "torso", m, top))
    m = mask()
    _capsule(m, (kp[5] + kp[6]) / 2, hc, px(0.03), px(0.03))
    pieces.append((float(depth[[5, 6]].mean()) - 0.02, "neck", m, skin))
    for sd, (sh, el, wr, hp, kn, an) in (("l", (5, 7, 9, 11, 13, 15)), ("r", (6, 8, 10, 12, 14, 16))):
        limb(f"{sd}_uarm", sh, el, limb_r["uarm"], limb_r["uarm"] * 0.9, top)
        limb(f"{sd}_farm", el, wr, limb_r["farm"], limb_r["farm"] * 0.85, top if long_sleeve else skin)
        m = mask()
        hand_end = kp[wr] + (kp[wr] - kp[el]) / (np.linalg.norm(kp[wr] - kp[el]) + 1e-6) * px(0.04)
        _capsule(m, kp[wr], hand_end, px(0.028 * thick), px(0.024 * thick))
        pieces.append((float(depth[wr]) + 0.001, f"{sd}_hand", m, skin))
        limb(f"{sd}_thigh", hp, kn, limb_r["thigh"], limb_r["thigh"] * 0.85, bottom)
        limb(f"{sd}_shin", kn, an, limb_r["shin"], limb_r["shin"] * 0.8, bottom if long_leg else skin)
        m = mask()
        toe3 = pts3[an] + rot @ np.array([0.0, -0.01, 0.09])
        _capsule(m, kp[an], proj(toe3)[0] - off, px(0.03 * thick), px(0.025 * thick))
        pieces.append((float(depth[an]) + 0.001, f"{sd}_foot", m, shoe))
    # head: hair cap, face disc facing the camera, eyes and nose only when turned toward us
    m = mask()
    hr = px(p["head_r"] * rng.uniform(0.95, 1.1))
    cv2.circle(m, tuple(np.round(hc).astype(int)), int(round(hr)), 1, -1)
    for e in (3, 4):
        cv2.ellipse(
            m, tuple(np.round(kp[e]).astype(int)), (max(1, int(hr * 0.25)), max(1, int(hr * 0.35))), 0, 0, 360, 1, -1
        )
    pieces.append((float(head_c[2]), "head", m, skin))
    pieces.sort(key=lambda t: t[0])
    silhouette = np.zeros((full.h, full.w), np.uint8)
    local = silhouette[y0 : y0 + cv.h, x0 : x0 + cv.w]
    for _, name, m, colour in pieces:
        label = fig * 32 + PART_IDS[name]
        cv.paint(m, colour, label, outline)
        local |= m
        if name == "head":
            _draw_face(cv, rng, kp, hc, hr, fwd, hair, skin, label)
        elif name == "torso" and (rot @ p["chest"])[2] > 0.15:  # chest toward the camera: neckline
            v = np.zeros_like(m)
            cv2.fillConvexPoly(v, np.round(proj(p["collar"] @ rot.T) - off).astype(np.int32), 1)
            cv.paint(v & m, skin, label, outline)
    return kp + off, silhouette


def _draw_face(
    cv: _Canvas,
    rng: np.random.Generator,
    kp: np.ndarray,
    hc: np.ndarray,
    hr: float,
    fwd: np.ndarray,
    hair: np.ndarray,
    skin: np.ndarray,
    label: int,
) -> None:
    head = np.zeros((cv.h, cv.w), np.uint8)
    cv2.circle(head, tuple(np.round(hc).astype(int)), int(round(hr)), 1, -1)
    cap = np.zeros_like(head)
    if fwd[2] < -0.3:  # seen from behind: all hair
        cap = head
    else:
        off = -np.array([kp[0][0] - hc[0], kp[0][1] - hc[1]]) * 0.6
        cv2.circle(cap, tuple(np.round(hc + off - np.array([0, hr * 0.35])).astype(int)), int(round(hr * 0.95)), 1, -1)
        cap &= head
    sel = cap.astype(bool)
    cv.img[sel] = hair
    cv.labels[sel] = label
    if fwd[2] > -0.3:  # the nose sticks out of the head outline when seen from the side
        nose = np.zeros_like(head)
        d = np.array([kp[0][0] - hc[0], kp[0][1] - hc[1]])
        _capsule(nose, hc + d * 0.7, hc + d * 1.25, max(1.0, hr * 0.16), max(1.0, hr * 0.1))
        sel = nose.astype(bool)
        cv.img[sel] = skin
        cv.labels[sel] = label
    if fwd[2] > -0.1:
        dark = np.float32([20, 20, 25]) + rng.uniform(0, 40)
        er = max(1, int(round(hr * 0.13)))
        for e in (1, 2):
            cv2.circle(cv.img, tuple(np.round(kp[e]).astype(int)), er, tuple(float(x) for x in dark), -1)
        cv2.circle(
            cv.img,
            tuple(np.round(kp[0]).astype(int)),
            max(1, int(round(hr * 0.12))),
            tuple(float(x) for x in skin * 0.6),
            -1,
        )


def _occluder(cv: _Canvas, rng: np.random.Generator, box: np.ndarray) -> None:
    """A textured object over part of a figure (a table, a sign, a pillar ...)."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    ow, oh = bw * rng.uniform(0.3, 1.4), bh * rng.uniform(0.15, 0.5)
    if rng.random() < 0.5:
        ow, oh = bw * rng.uniform(0.15, 0.4), bh * rng.uniform(0.3, 1.2)
    cx, cy = rng.uniform(x1, x2), rng.uniform(y1 + bh * 0.2, y2)
    r = max(ow, oh) / 2 + 2
    wx0, wy0 = int(np.clip(cx - r, 0, cv.w - 2)), int(np.clip(cy - r, 0, cv.h - 2))
    win = cv.window(wx0, wy0, int(np.clip(cx + r + 1, wx0 + 2, cv.w)), int(np.clip(cy + r + 1, wy0 + 2, cv.h)))
    cx, cy = cx - wx0, cy - wy0
    m = np.zeros((win.h, win.w), np.uint8)
    if rng.random() < 0.6:
        cv2.rectangle(m, (int(cx - ow / 2), int(cy - oh / 2)), (int(cx + ow / 2), int(cy + oh / 2)), 1, -1)
    else:
        cv2.ellipse(
            m, (int(cx), int(cy)), (max(1, int(ow / 2)), max(1, int(oh / 2))), rng.uniform(0, 180), 0, 360, 1, -1
        )
    win.paint(m, _texture(rng, win.h, win.w), OCCLUDER_LABEL, rng.uniform(0.6, 0.9))


def _visibility(cv: _Canvas, fig: int, kp: np.ndarray) -> np.ndarray:
    vis = np.zeros(17, np.float32)
    own = {j: {fig * 32 + PART_IDS[n] for n, ks in PARTS.items() if j in ks} for j in range(17)}
    for j in range(17):
        x, y = kp[j]
        if not (0 <= x < cv.w and 0 <= y < cv.h):
            continue
        xi, yi = int(x), int(y)
        patch = cv.labels[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2]
        vis[j] = 2.0 if np.isin(patch, list(own[j])).any() else 1.0
    return vis


def generate_scene(
    seed: int, size: tuple[int, int] | None = None, max_persons: int = 5, min_persons: int = 1
) -> tuple[np.ndarray, list[Person]]:
    """RGB uint8 image [H,W,3] and its persons (drawn back to front), fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    if size is None:
        w = int(rng.choice([320, 384, 480, 512, 640]))
        h = int(round(w * rng.uniform(0.6, 1.4) / 16) * 16)
    else:
        w, h = size
    cv = _Canvas(_background(rng, h, w).astype(np.float32))
    n = int(rng.integers(min_persons, max_persons + 1))
    heights = np.exp(rng.uniform(np.log(0.22), np.log(0.95), n)) * h
    order = np.argsort(heights)  # smaller = farther away = drawn first
    placed: list[np.ndarray] = []
    raw: list[tuple[int, np.ndarray, np.ndarray]] = []
    for fig, i in enumerate(order):
        hp = float(heights[i])
        for _ in range(10):  # avoid near-total overlap of two figures
            cx = rng.uniform(-0.1, 1.1) * w if rng.random() < 0.2 else rng.uniform(0.1, 0.9) * w
            cy = rng.uniform(hp * 0.35, h - hp * 0.35) if hp < h * 0.8 else h / 2 + rng.uniform(-0.1, 0.1) * h
            b = np.array([cx - hp * 0.25, cy - hp / 2, cx + hp * 0.25, cy + hp / 2])
            if all(_iou(b, q) < 0.35 for q in placed):
                break
        placed.append(b)
        kp, sil = _render_figure(cv, rng, fig, hp, (cx, cy))
        raw.append((fig, kp, sil))
        if rng.random() < 0.15:
            ys, xs = np.nonzero(sil)
            if len(xs):
                _occluder(cv, rng, np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32))
    for _ in range(int(rng.integers(0, 3))):  # free-standing distractor objects
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        _occluder(cv, rng, np.array([x - 40, y - 60, x + 40, y + 60], np.float32))
    img = cv.img
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.2))
    img = img + rng.normal(0, rng.uniform(0, 8), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    persons = []
    for fig, kp, sil in raw:
        ys, xs = np.nonzero(sil)
        if len(xs) < 20:
            continue
        vis = _visibility(cv, fig, kp)
        if ((cv.labels > 0) & (cv.labels // 32 == fig)).sum() < 20 or not vis.any():
            continue
        k = np.concatenate([kp, vis[:, None]], 1).astype(np.float32)
        k[vis == 0, :2] = 0.0
        bbox = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        persons.append(Person(bbox=bbox, keypoints=k, area=float(len(xs))))
    return img, persons


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)
