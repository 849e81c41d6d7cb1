"""PaddleX face-feature contract: ``PreProcess.transform_ops`` + ``PostProcess.NormalizeFeatures``.

As PaddleX's ``image_feature`` predictor: ``ResizeImage`` (``size`` or ``resize_short``; PaddleX
ignores ``interpolation``/``backend`` there and resizes bilinearly with cv2, so do we),
``NormalizeImage`` (order ``''`` or ``hwc``, which the feature exports write), ``ToCHWImage``;
then ``preds[0] / ||preds[0]||`` per row, so inner product between two vectors is their cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ModelInvalid
from . import cls_transforms as T

Op = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FeatureSpec:
    ops: tuple[Op, ...]
    input_size: tuple[int, int]  # (w, h) the model sees
    normalize: bool  # PostProcess.NormalizeFeatures present


def read_spec(config: dict[str, Any]) -> FeatureSpec:
    try:
        ops_cfg = config["PreProcess"]["transform_ops"]
    except (KeyError, TypeError):
        raise ModelInvalid("feature model inference.yml lacks PreProcess.transform_ops") from None
    if not isinstance(ops_cfg, list):
        raise ModelInvalid("PreProcess.transform_ops must be a list")
    ops: list[Op] = []
    size: tuple[int, int] | None = None
    has_chw = False
    for entry in ops_cfg:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ModelInvalid(f"transform op {entry!r} must be a single-key mapping")
        ((key, args),) = entry.items()
        args = args or {}
        if key == "ResizeImage":
            if args.get("size"):
                sz = args["size"]
                size = (int(sz), int(sz)) if isinstance(sz, int) else (int(sz[0]), int(sz[1]))
                ops.append(T.resize_fixed(size))
            elif args.get("resize_short"):
                ops.append(T.resize_short(int(args["resize_short"])))
            else:
                raise ModelInvalid("ResizeImage needs size or resize_short")
        elif key == "NormalizeImage":
            if args.get("order", "") not in ("", "hwc") or int(args.get("channel_num", 3)) != 3:
                raise ModelInvalid("NormalizeImage supports order '' / 'hwc' and 3 channels only")
            ops.append(
                T.normalize(
                    T.parse_scale(args.get("scale", 1 / 255)),
                    args.get("mean", [0.485, 0.456, 0.406]),
                    args.get("std", [0.229, 0.224, 0.225]),
                )
            )
        elif key == "ToCHWImage":
            ops.append(T.to_chw)
            has_chw = True
        elif key in ("DecodeImage",):
            continue
        else:
            raise ModelInvalid(f"unsupported feature transform op {key!r}")
    if size is None:
        raise ModelInvalid("feature model needs ResizeImage with a fixed size (faces are batched)")
    if not has_chw:
        raise ModelInvalid("feature model PreProcess must end in ToCHWImage")
    post = config.get("PostProcess") or {}
    return FeatureSpec(tuple(ops), size, isinstance(post, dict) and "NormalizeFeatures" in post)


def preprocess(spec: FeatureSpec, chips: Sequence[np.ndarray]) -> np.ndarray:
    """RGB uint8 chips -> one float32 NCHW batch."""
    return T.batch([T.preprocess(spec.ops, img) for img in chips])


def l2_normalize(feats: np.ndarray) -> np.ndarray:
    feats = np.asarray(feats, np.float32)
    if feats.ndim != 2:
        raise ModelInvalid(f"feature model output must be [N, dim], got {feats.shape}")
    norms = np.sqrt((feats.astype(np.float64) ** 2).sum(axis=1, keepdims=True))
    # A zero vector (a black chip through some models) stays zero instead of becoming NaN.
    return (feats / np.maximum(norms, 1e-12)).astype(np.float32)


def postprocess(spec: FeatureSpec, outputs: Sequence[np.ndarray]) -> np.ndarray:
    feats = np.asarray(outputs[0], np.float32)
    return l2_normalize(feats) if spec.normalize else feats
