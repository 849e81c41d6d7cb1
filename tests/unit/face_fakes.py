"""Fakes for the face service: bundles on disk without weights, input-driven fake networks.

A "face" is a bright square on a dark picture. The fake MTCNN stages call a window a face in
proportion to its brightness; the fake feature model describes a chip by the mean colour of
its four quadrants, so a red face and a green face get orthogonal vectors and the same colour
gets the same vector wherever it appears.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import yaml

from visionpack.config import ServiceConfig

RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)


def _write(bundle: Path, cfg: dict, manifest: dict | None = None) -> Path:
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "inference.json").write_text("{}")
    (bundle / "inference.pdiparams").write_bytes(bundle.name.encode())
    (bundle / "inference.yml").write_text(yaml.safe_dump(cfg))
    if manifest is not None:
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def write_mtcnn(root: Path) -> dict[str, str]:
    out = {}
    for stage, outputs in (
        ("pnet", ["reg", "prob"]),
        ("rnet", ["reg", "prob"]),
        ("onet", ["reg", "landmarks", "prob"]),
    ):
        b = _write(
            root / f"fake_mtcnn_{stage}",
            {"Global": {"model_name": f"MTCNN_{stage.upper()}"}, "MTCNN": {"outputs": outputs}},
            {"schema": 1, "name": f"fake_mtcnn_{stage}", "task": "face_detection", "runtime": {"outputs": outputs}},
        )
        out[f"detector_{stage}"] = str(b)
    return out


def write_feature(root: Path, size: int = 32, name: str = "fake_feature", extra: dict | None = None) -> str:
    cfg = {
        "Global": {"model_name": "MobileFaceNet"},
        "PreProcess": {
            "transform_ops": [
                {"ResizeImage": {"size": [size, size]}},
                {"NormalizeImage": {"scale": 1.0 / 255, "mean": [0, 0, 0], "std": [1, 1, 1], "order": "hwc"}},
                {"ToCHWImage": None},
            ]
        },
        "PostProcess": {"NormalizeFeatures": None},
        **(extra or {}),
    }
    return str(_write(root / name, cfg))


def write_paddlex_detector(root: Path) -> str:
    cfg = {
        "Global": {"model_name": "PicoDet_LCNet_x2_5_face"},
        "draw_threshold": 0.5,
        "label_list": ["face"],
        "Preprocess": [
            {"type": "Resize", "target_size": [64, 64], "keep_ratio": False, "interp": 1},
            {"type": "NormalizeImage", "is_scale": True, "mean": [0, 0, 0], "std": [1, 1, 1]},
            {"type": "Permute"},
        ],
    }
    return str(_write(root / "fake_face_det", cfg))


def _bright(x: np.ndarray) -> np.ndarray:
    """MTCNN-normalised NCHW -> per-pixel brightness in [0, 1] (max over channels)."""
    return (x.max(axis=1) / 0.0078125 + 127.5) / 255.0


class FakePNet:
    """Scores each 12x12 window (stride 2) like FakeHead scores a crop: framed faces win."""

    input_names = ["x"]

    def run(self, feeds):
        x = feeds["x"]
        _, _, h, w = x.shape
        oh, ow = max(0, math.ceil((h - 2) / 2) - 4), max(0, math.ceil((w - 2) / 2) - 4)
        b = _bright(x)[0]
        # (ceil pooling lets the last windows overhang the border: pad so they read zeros)
        ii = np.pad(b, ((1, 12), (1, 12))).cumsum(0).cumsum(1)
        ys, xs = np.arange(oh)[:, None] * 2, np.arange(ow)[None] * 2

        def mean(y0, x0, size):
            y, xx = ys + y0, xs + x0
            return (ii[y + size, xx + size] - ii[y, xx + size] - ii[y + size, xx] + ii[y, xx]) / size**2

        centre = mean(3, 3, 6)
        corners = (mean(0, 0, 2) + mean(0, 10, 2) + mean(10, 0, 2) + mean(10, 10, 2)) / 4
        p = (centre * (1 - corners)).astype(np.float32)
        return [np.zeros((1, 4, oh, ow), np.float32), np.stack([1 - p, p])[None]]


class FakeHead:
    input_names = ["x"]

    def __init__(self, landmarks: bool):
        self.landmarks = landmarks

    def run(self, feeds):
        x = feeds["x"]
        n = len(x)
        b = _bright(x)
        s = b.shape[1]
        c, k = s // 4, max(1, s // 7)
        # A whole face: a bright centre and dark corners (a box inside the square scores low).
        centre = b[:, c : s - c, c : s - c].mean(axis=(1, 2))
        corners = np.stack([b[:, :k, :k], b[:, :k, -k:], b[:, -k:, :k], b[:, -k:, -k:]]).mean(axis=(0, 2, 3))
        p = (centre * (1 - corners)).astype(np.float32)
        prob = np.stack([1 - p, p], axis=1)
        reg = np.zeros((n, 4), np.float32)
        if not self.landmarks:
            return [reg, prob]
        lm = np.tile(np.array([0.3, 0.7, 0.5, 0.35, 0.65, 0.35, 0.35, 0.55, 0.75, 0.75], np.float32), (n, 1))
        return [reg, lm, prob]


class FakeFeature:
    """[N,3,H,W] in [0,1] -> 12-d: mean colour of each quadrant (+ a small constant)."""

    input_names = ["x"]

    def __init__(self, twist: float = 0.0):
        self.twist = twist  # a different "model": rotates the vectors a little
        self.calls = 0

    def run(self, feeds):
        self.calls += 1
        x = feeds["x"]
        _, _, h, w = x.shape
        q = [
            x[:, :, : h // 2, : w // 2],
            x[:, :, : h // 2, w // 2 :],
            x[:, :, h // 2 :, : w // 2],
            x[:, :, h // 2 :, w // 2 :],
        ]
        v = np.concatenate([a.mean(axis=(2, 3)) for a in q], axis=1) + 0.01
        if self.twist:
            v = v + self.twist * np.roll(v, 1, axis=1)
        return [v.astype(np.float32)]


class FakePaddleXDetector:
    """Finds the bright square of a 64x64-resized image and reports it in original pixels."""

    input_names = ["image", "scale_factor"]

    def run(self, feeds):
        x, sf = feeds["image"][0], feeds["scale_factor"][0]
        b = x.max(axis=0)
        ys, xs = np.nonzero(b > 0.5)
        if len(ys) == 0:
            return [np.array([[-1, 0, 0, 0, 0, 0]], np.float32), np.array([1], np.int32)]
        box = [xs.min() / sf[1], ys.min() / sf[0], (xs.max() + 1) / sf[1], (ys.max() + 1) / sf[0]]
        return [np.array([[0, 0.97, *box]], np.float32), np.array([1], np.int32)]


def factory(twist: float = 0.0):
    def make(bundle, cfg):
        name = bundle.path.name
        if name.endswith("pnet"):
            return FakePNet()
        if name.endswith("rnet"):
            return FakeHead(False)
        if name.endswith("onet"):
            return FakeHead(True)
        if name == "fake_face_det":
            return FakePaddleXDetector()
        return FakeFeature(twist)

    return make


def picture(*faces, size=(160, 240)) -> np.ndarray:
    """Dark RGB picture with a 48 px square face of each colour, side by side."""
    h, w = size
    img = np.full((h, w, 3), 10, np.uint8)
    for i, colour in enumerate(faces):
        x = 20 + i * 70
        img[50:98, x : x + 48] = colour
    return img


def b64(rgb: np.ndarray, fmt: str = ".jpg") -> str:
    import cv2

    ok, buf = cv2.imencode(fmt, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def face_config(
    tmp_path: Path,
    *,
    detector: str = "mtcnn",
    options: dict | None = None,
    feature: str | None = None,
    deploy: str = "demo-face",
) -> ServiceConfig:
    models = write_mtcnn(tmp_path) if detector == "mtcnn" else {"detector": write_paddlex_detector(tmp_path)}
    models["feature"] = feature or write_feature(tmp_path)
    return ServiceConfig(
        deploy=deploy,
        service="face",
        models=models,
        options=options or {"rec_threshold": 0.9},
        data_dir=str(tmp_path / "data"),
        run_dir=str(tmp_path / "run"),
    )
