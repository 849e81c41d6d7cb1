"""PaddleX object-detection preprocessing, driven by the yml ``Preprocess`` list.

Behaviour follows PaddleX 3.7's ``DetRunnerPredictor`` (object_detection/predictor.py and
processors.py): the image is RGB; each ``{type: ..., **args}`` entry becomes one op; the model
inputs are ``image`` (NCHW float32), ``scale_factor`` ([h_scale, w_scale] = resized/original)
and, for the models that have it, ``im_shape`` ([h, w] after the resize, before any padding).
Unlike PaddleX, which picks ``im_shape`` by a list of model-name substrings and feeds inputs by
position, we feed every input *by name* and only the inputs the graph declares, so a renamed
model or a custom export cannot get its inputs swapped.

Shared by the keypoint service (person detector) and the face service (PaddleX face
detectors). Pure numpy + cv2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ModelInvalid

# PaddleX maps the yml's integer ``interp`` to these names, then to cv2 codes.
_INTERP_BY_INT = {0: "NEAREST", 1: "LINEAR", 2: "BICUBIC", 3: "AREA", 4: "LANCZOS4"}
_CV2_INTERP = {"NEAREST": 0, "LINEAR": 1, "BICUBIC": 2, "CUBIC": 2, "AREA": 3, "LANCZOS4": 4}

KNOWN_INPUTS = ("image", "scale_factor", "im_shape")


@dataclass
class DetSample:
    """The image as it moves through the ops, plus the sizes the model needs."""

    img: np.ndarray
    ori_size: tuple[int, int]  # (w, h) of the request image
    size: tuple[int, int]  # (w, h) after the last resize (PaddleX's img_size)
    scale: tuple[float, float] = (1.0, 1.0)  # (w_scale, h_scale), resized / original


Op = Callable[[DetSample], DetSample]


def cv2_interp(value: Any) -> int:
    name = _INTERP_BY_INT.get(value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        return _CV2_INTERP[str(name).upper()]
    except KeyError:
        raise ModelInvalid(f"unsupported interpolation {value!r}") from None


def _int_pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ModelInvalid(f"{what} must be an int or two positive ints, got {value!r}")


def resize_op(target_size: Any, keep_ratio: bool = False, interp: Any = 2) -> Op:
    """``Resize``: yml ``target_size`` is [h, w]; keep_ratio fits the image inside it."""
    th, tw = _int_pair(target_size, "Resize.target_size")
    code = cv2_interp(interp)

    def op(s: DetSample) -> DetSample:
        import cv2

        h, w = s.img.shape[:2]
        if keep_ratio:
            # The longer side is bounded by the longer target side and the shorter by the
            # shorter, whatever the orientation; Python round() as PaddleX's _rescale_size.
            ratio = min(max(tw, th) / max(w, h), min(tw, th) / min(w, h))
            nw, nh = round(w * ratio), round(h * ratio)
        else:
            nw, nh = tw, th
        img = s.img if (nw, nh) == (w, h) else cv2.resize(s.img, (nw, nh), interpolation=code)
        return DetSample(img, s.ori_size, (nw, nh), (nw / s.ori_size[0], nh / s.ori_size[1]))

    return op


def normalize_params(args: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``NormalizeImage`` -> per-channel (alpha, beta) with out = x * alpha + beta.

    PaddleX: scale 1/255 when ``is_scale``; ``norm_type`` absent/none means mean_std; any other
    norm_type drops mean/std (PaddleX would then crash on an int mean; we just scale).
    """
    scale = 1.0 / 255.0 if args.get("is_scale", True) else 1.0
    norm_type = args.get("norm_type") or "mean_std"
    mean: Any = args.get("mean", [0.485, 0.456, 0.406])
    std: Any = args.get("std", [0.229, 0.224, 0.225])
    if norm_type not in ("mean_std", "none"):
        mean, std = [0.0] * 3, [1.0] * 3
    if isinstance(mean, (int, float)):
        mean = [float(mean)] * 3
    if isinstance(std, (int, float)):
        std = [float(std)] * 3
    try:
        mean_f = [float(m) for m in mean]
        std_f = [float(v) for v in std]
    except (TypeError, ValueError):
        raise ModelInvalid(f"NormalizeImage mean/std must be numbers, got {mean!r} / {std!r}") from None
    if len(mean_f) != 3 or len(std_f) != 3 or any(v == 0 for v in std_f):
        raise ModelInvalid("NormalizeImage needs 3 means and 3 non-zero stds")
    # Same arithmetic as PaddleX (float32 x * (scale/std) + (-mean/std)).
    alpha = np.array([scale / v for v in std_f], np.float32)
    beta = np.array([-m / v for m, v in zip(mean_f, std_f)], np.float32)
    return alpha, beta


def normalize_op(args: dict[str, Any]) -> Op:
    alpha, beta = normalize_params(args)

    def op(s: DetSample) -> DetSample:
        img = s.img.astype(np.float32)
        img *= alpha
        img += beta
        return DetSample(img, s.ori_size, s.size, s.scale)

    return op


def permute_op(s: DetSample) -> DetSample:
    return DetSample(s.img.transpose((2, 0, 1)), s.ori_size, s.size, s.scale)


def pad_op(size: Any = None, fill_value: Any = None) -> Op:
    """``Pad`` to a fixed [h, w] canvas, image at the top-left (HWC, before Permute)."""
    ph, pw = _int_pair(size if size is not None else [640, 640], "Pad.size")
    fill = np.array(fill_value if fill_value is not None else [127.5, 127.5, 127.5], np.float32)

    def op(s: DetSample) -> DetSample:
        h, w = s.img.shape[:2]
        if (h, w) == (ph, pw):
            return s
        if h > ph or w > pw:
            raise ModelInvalid(f"Pad.size {[ph, pw]} is smaller than the resized image {[h, w]}")
        canvas = np.empty((ph, pw, 3), np.float32)
        canvas[:] = fill
        canvas[:h, :w] = s.img
        return DetSample(canvas, s.ori_size, s.size, s.scale)

    return op


def pad_stride_op(stride: int = 32) -> Op:
    """``PadStride``: zero-pad CHW bottom/right to a multiple of the coarsest FPN stride."""

    def op(s: DetSample) -> DetSample:
        if stride <= 0:
            return s
        c, h, w = s.img.shape
        ph, pw = int(math.ceil(h / stride) * stride), int(math.ceil(w / stride) * stride)
        out = np.zeros((c, ph, pw), np.float32)
        out[:, :h, :w] = s.img
        return DetSample(out, s.ori_size, s.size, s.scale)

    return op


def warp_affine_op(keep_res: bool = True, pad: int = 31, input_h: int = 512, input_w: int = 512) -> Op:
    """``WarpAffine`` (CenterNet family): keep_res pads each side up to the next multiple of 32."""

    def op(s: DetSample) -> DetSample:
        import cv2

        h, w = s.img.shape[:2]
        if keep_res:
            out_h, out_w = (h | pad) + 1, (w | pad) + 1
            src_w, center = float(out_w), (float(w // 2), float(h // 2))
        else:
            out_h, out_w = input_h, input_w
            src_w, center = float(max(h, w)), (w / 2.0, h / 2.0)
        trans = window_affine(center, src_w, (out_w, out_h))
        # PaddleX converts RGB->BGR inside this op, so these models see BGR; so must we.
        bgr = np.ascontiguousarray(s.img[..., ::-1])
        img = cv2.warpAffine(bgr, trans, (out_w, out_h), flags=cv2.INTER_LINEAR)
        return DetSample(img, s.ori_size, s.size, s.scale)

    return op


def window_affine(center: Sequence[float], src_w: float, out_size: tuple[int, int], inv: bool = False) -> np.ndarray:
    """2x3 matrix taking a window ``src_w`` wide centred on ``center`` to ``out_size`` (w, h).

    The window's height follows the output aspect. Built from three point pairs (centre,
    a point half a width above it, and that vector turned 90 degrees), in float32 as PaddleX's
    ``get_affine_transform`` builds them, so crops match it to the last bit.
    """
    import cv2

    cx, cy = float(center[0]), float(center[1])
    dw, dh = float(out_size[0]), float(out_size[1])
    src = np.array([[cx, cy], [cx, cy - 0.5 * src_w], [cx - 0.5 * src_w, cy - 0.5 * src_w]], np.float32)
    # The third point recomputed from the float32 first two, exactly as the reference does.
    d = src[0] - src[1]
    src[2] = src[1] + np.array([-d[1], d[0]], np.float32)
    dst = np.array([[dw * 0.5, dh * 0.5], [dw * 0.5, dh * 0.5 - dw * 0.5], [0, 0]], np.float32)
    d = dst[0] - dst[1]
    dst[2] = dst[1] + np.array([-d[1], d[0]], np.float32)
    return cv2.getAffineTransform(dst, src) if inv else cv2.getAffineTransform(src, dst)


_BUILDERS: dict[str, Callable[..., Op]] = {
    "Resize": resize_op,
    "NormalizeImage": lambda **a: normalize_op(a),
    "Permute": lambda **a: permute_op,
    "Pad": pad_op,
    "PadStride": pad_stride_op,
    "WarpAffine": warp_affine_op,
}


def build_ops(preprocess: Any, allowed: Sequence[str] | None = None) -> list[Op]:
    """yml ``Preprocess`` list -> ops; unknown types are a model error, not silently skipped."""
    if not isinstance(preprocess, list):
        raise ModelInvalid("inference.yml lacks a 'Preprocess' list (not a PaddleX detection export?)")
    ops: list[Op] = []
    for entry in preprocess:
        if not isinstance(entry, dict) or "type" not in entry:
            raise ModelInvalid(f"Preprocess entry {entry!r} lacks 'type'")
        kind = entry["type"]
        args = {k: v for k, v in entry.items() if k != "type"}
        if kind not in _BUILDERS or (allowed is not None and kind not in allowed):
            raise ModelInvalid(f"unsupported Preprocess op {kind!r}")
        try:
            ops.append(_BUILDERS[kind](**args))
        except TypeError as exc:
            raise ModelInvalid(f"Preprocess op {kind}: {exc}") from None
    return ops


@dataclass
class DetPreprocessor:
    """RGB uint8 image -> the detector's feeds, by input name."""

    ops: list[Op]
    input_names: list[str] = field(default_factory=lambda: ["image", "scale_factor"])

    @classmethod
    def from_config(cls, config: dict[str, Any], input_names: Sequence[str]) -> DetPreprocessor:
        names = list(input_names)
        unknown = [n for n in names if n not in KNOWN_INPUTS]
        if "image" not in names or unknown:
            raise ModelInvalid(f"detector inputs {names} are not PaddleX's (image, scale_factor[, im_shape])")
        return cls(build_ops(config.get("Preprocess")), names)

    def sample(self, rgb: np.ndarray) -> DetSample:
        h, w = rgb.shape[:2]
        s = DetSample(rgb, (w, h), (w, h))
        for op in self.ops:
            s = op(s)
        return s

    def feeds(self, samples: Sequence[DetSample]) -> dict[str, np.ndarray]:
        if any(s.img.ndim != 3 or s.img.shape[0] != 3 for s in samples):
            raise ModelInvalid("detector Preprocess must end in CHW (add 'Permute')")
        if len({s.img.shape for s in samples}) != 1:
            raise ModelInvalid("images of one detector batch must share a shape (use a fixed Resize or Pad)")
        out = {"image": np.stack([s.img for s in samples]).astype(np.float32, copy=False)}
        if "scale_factor" in self.input_names:
            out["scale_factor"] = np.array([[s.scale[1], s.scale[0]] for s in samples], np.float32)
        if "im_shape" in self.input_names:
            out["im_shape"] = np.array([[s.size[1], s.size[0]] for s in samples], np.float32)
        return out

    def __call__(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        return self.feeds([self.sample(rgb)])
