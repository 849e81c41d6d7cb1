"""PaddleX 3 classification pre/post-processing, driven by ``inference.yml``.

Behaviour follows PaddleX's ``ClasRunnerPredictor`` (image_classification/predictor.py) and
its processors: the yml's ``PreProcess.transform_ops`` is a list of single-key mappings applied
in order to an RGB image; ``PostProcess.Topk`` sorts with ``argsort`` and rounds scores to 5
decimals. No softmax here: PaddleX exports bake it into the graph. Pure numpy + cv2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ModelInvalid

Op = Callable[[np.ndarray], np.ndarray]

_INTERP = {"NEAREST": 0, "LINEAR": 1, "BICUBIC": 2, "CUBIC": 2, "AREA": 3, "LANCZOS4": 4}


def _cv2_interp(name: str) -> int:
    import cv2

    codes = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 2: cv2.INTER_CUBIC, 3: cv2.INTER_AREA, 4: cv2.INTER_LANCZOS4}
    try:
        return codes[_INTERP[str(name).upper()]]
    except KeyError:
        raise ModelInvalid(f"unsupported interpolation {name!r}") from None


def resize_short(target: int, interp: str = "LINEAR") -> Op:
    code = _cv2_interp(interp)

    def op(img: np.ndarray) -> np.ndarray:
        import cv2

        h, w = img.shape[:2]
        scale = target / min(h, w)
        # Python's round (banker's rounding) as PaddleX uses; it decides odd sizes.
        return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=code)

    return op


def resize_fixed(size: int | Sequence[int], interp: str = "LINEAR") -> Op:
    w, h = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    code = _cv2_interp(interp)

    def op(img: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(img, (w, h), interpolation=code)

    return op


def center_crop(size: int | Sequence[int]) -> Op:
    cw, ch = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def op(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if w < cw or h < ch:
            raise ModelInvalid(f"image ({w}, {h}) smaller than the crop ({cw}, {ch}); fix ResizeImage in inference.yml")
        x1, y1 = max(0, (w - cw) // 2), max(0, (h - ch) // 2)
        return img[y1 : min(h, y1 + ch), x1 : min(w, x1 + cw)]

    return op


def normalize(scale: float, mean: Sequence[float], std: Sequence[float]) -> Op:
    # Same arithmetic as PaddleX: x * (scale/std) + (-mean/std), in float32.
    alpha = np.array([scale / s for s in std], dtype=np.float32)
    beta = np.array([-m / s for m, s in zip(mean, std)], dtype=np.float32)

    def op(img: np.ndarray) -> np.ndarray:
        out = img.astype(np.float32)
        out *= alpha
        out += beta
        return out

    return op


def to_chw(img: np.ndarray) -> np.ndarray:
    return img.transpose((2, 0, 1))


def parse_scale(value: Any) -> float:
    # Training configs write "1.0/255.0"; exports write a float. Accept both, nothing else.
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        num, sep, den = value.partition("/")
        try:
            return float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError):
            pass
    raise ModelInvalid(f"NormalizeImage.scale {value!r} is not a number")


def build_preprocess(config: dict[str, Any]) -> list[Op]:
    try:
        ops_cfg = config["PreProcess"]["transform_ops"]
    except (KeyError, TypeError):
        raise ModelInvalid("inference.yml lacks PreProcess.transform_ops") from None
    ops: list[Op] = []
    for entry in ops_cfg:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ModelInvalid(f"transform op {entry!r} must be a single-key mapping")
        ((key, args),) = entry.items()
        args = args or {}
        if key == "ResizeImage":
            interp = args.get("interpolation", "LINEAR") or "LINEAR"
            if args.get("resize_short"):
                ops.append(resize_short(int(args["resize_short"]), interp))
            elif args.get("size"):
                ops.append(resize_fixed(args["size"], interp))
            else:
                raise ModelInvalid("ResizeImage needs resize_short or size")
        elif key == "CropImage":
            ops.append(center_crop(args.get("size", 224)))
        elif key == "NormalizeImage":
            if args.get("order", "") not in ("", "hwc") or int(args.get("channel_num", 3)) != 3:
                raise ModelInvalid("NormalizeImage supports order '' and 3 channels only")
            ops.append(
                normalize(
                    parse_scale(args.get("scale", 1 / 255)),
                    args.get("mean", [0.485, 0.456, 0.406]),
                    args.get("std", [0.229, 0.224, 0.225]),
                )
            )
        elif key == "ToCHWImage":
            ops.append(to_chw)
        elif key == "DecodeImage":
            continue  # training-time op; we already hold a decoded RGB image
        else:
            raise ModelInvalid(f"unsupported transform op {key!r}")
    return ops


def preprocess(ops: Sequence[Op], img: np.ndarray) -> np.ndarray:
    for op in ops:
        img = op(img)
    return img


@dataclass(frozen=True)
class TopkSpec:
    topk: int
    labels: tuple[str, ...] | None


def build_topk(config: dict[str, Any]) -> TopkSpec:
    post = (config.get("PostProcess") or {}).get("Topk")
    if not isinstance(post, dict):
        raise ModelInvalid("inference.yml lacks PostProcess.Topk")
    labels = post.get("label_list")
    return TopkSpec(topk=int(post.get("topk", 5)), labels=tuple(str(x) for x in labels) if labels else None)


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    score: float


def topk(probs: np.ndarray, k: int, labels: Sequence[str] | None) -> list[list[Category]]:
    """Per batch row: the k best classes, best first, as PaddleX's Topk orders them."""
    k = max(1, min(int(k), probs.shape[1]))
    indexes = probs.argsort(axis=1)[:, -k:][:, ::-1].astype("int32")
    out = []
    for row, idx in zip(probs, indexes):
        # PaddleX rounds in float32 (0.12346 -> 0.12346000224...); rounding the float64 value
        # gives the same 5 decimals without the float32 tail in the JSON.
        out.append(
            [
                Category(int(i), labels[i] if labels and i < len(labels) else str(int(i)), round(float(row[i]), 5))
                for i in idx
            ]
        )
    return out


def batch(images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack(images, axis=0).astype(np.float32, copy=False)
