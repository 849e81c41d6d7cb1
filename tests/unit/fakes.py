"""Fakes for unit tests only: a bundle on disk without real weights, and engines."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import yaml

LABELS = [f"class_{i}" for i in range(10)]


def write_cls_bundle(root: Path, labels=LABELS, resize_short=256, crop=224) -> Path:
    bundle = root / "fake_cls"
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "inference.json").write_text("{}")
    (bundle / "inference.pdiparams").write_bytes(b"\0")
    cfg = {
        "Global": {"model_name": "PP-LCNet_x1_0"},
        "PreProcess": {
            "transform_ops": [
                {"ResizeImage": {"resize_short": resize_short}},
                {"CropImage": {"size": crop}},
                {
                    "NormalizeImage": {
                        "channel_num": 3,
                        "mean": [0.485, 0.456, 0.406],
                        "std": [0.229, 0.224, 0.225],
                        "order": "",
                        "scale": 0.00392156862745098,
                    }
                },
                {"ToCHWImage": None},
            ]
        },
        "PostProcess": {"Topk": {"topk": 5, "label_list": list(labels)}},
    }
    (bundle / "inference.yml").write_text(yaml.safe_dump(cfg))
    return bundle


class FakeEngine:
    """Scores class i by how close the mean red value is to i/10: deterministic, input-driven."""

    input_names = ["x"]

    def __init__(self, n: int = len(LABELS)):
        self.n = n
        self.calls = []

    def run(self, feeds):
        x = feeds["x"]
        self.calls.append(x.shape)
        red = x[:, 0].mean(axis=(1, 2))  # normalised red channel
        centers = np.linspace(-2, 2, self.n)
        logits = -np.abs(red[:, None] - centers[None, :]) * 5
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return [(e / e.sum(axis=1, keepdims=True)).astype(np.float32)]


def fake_factory(bundle, cfg):
    return FakeEngine()


def jpeg_b64(h=64, w=96, color=(200, 30, 30)) -> str:
    import cv2

    img = np.zeros((h, w, 3), np.uint8)
    img[:] = color[::-1]  # BGR for cv2
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def png_bytes(h, w) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))
    assert ok
    return buf.tobytes()
