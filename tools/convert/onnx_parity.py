"""Parity of an ONNX rendition with Paddle: the bundle's sample input, the three runtimes, the comparison.

Build-time only (the vendor's build environment, tools/convert/onnx_rendition.py): Paddle Inference
gives the reference outputs, then ONNX Runtime and OpenVINO run the rendition on the same feeds.
The installed package's engines are not used here: this records what the runtimes themselves give,
and `backend: auto` re-checks it on the operator's server against ``parity.npz``.

The sample input is one of package/samples/ per task (or ``--sample``), resized to the graph's
input size and normalised with the bundle's own NormalizeImage settings; item 2 of a batch is the
same image mirrored, so a batch of two tells a graph that mixes up its batch items.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "package" / "samples"
SAMPLE_BY_TASK = {
    "image_classification": "cat.jpg",
    "face_feature": "faces/obama_1.jpg",
    "face_detection": "faces/obama_1.jpg",
    "object_detection": "pose/figures.jpg",
    "keypoint_detection": "pose/figures.jpg",
}
DEFAULT_HW = (96, 128)  # an image input whose height/width the graph leaves open (MTCNN P-net)
TOPK = 5
# parity.npz array names (docs/backends.md)
INPUT_PREFIX, OUTPUT_PREFIX = "input:", "output:"
# One input spec: name, shape (None = dynamic), numpy dtype name.
InputSpec = tuple[str, list[int | None], str]


def sample_image(task: str, override: Path | None = None) -> Path:
    return override or SAMPLES / SAMPLE_BY_TASK.get(task, "cat.jpg")


def _normalize_params(config: Any) -> Mapping[str, Any] | None:
    """The first mapping of the yml holding ``mean`` and ``std`` (NormalizeImage, either yml style)."""
    if isinstance(config, Mapping):
        if isinstance(config.get("mean"), list) and isinstance(config.get("std"), list):
            return config
        children: Sequence[Any] = list(config.values())
    elif isinstance(config, list):
        children = config
    else:
        return None
    for child in children:
        found = _normalize_params(child)
        if found is not None:
            return found
    return None


def normalize(rgb: np.ndarray, config: Mapping[str, Any]) -> np.ndarray:
    """HWC uint8 RGB -> HWC float32 as the bundle's NormalizeImage does; (x/255 - 0.5)/0.5 without one."""
    x = rgb.astype(np.float32)
    params = _normalize_params(config)
    if params is None:
        return (x / 255.0 - 0.5) / 0.5
    scale = params.get("scale")
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        x = x * np.float32(scale)
    elif params.get("is_scale", True):
        x = x / 255.0
    mean = np.asarray(params["mean"], np.float32)
    std = np.asarray(params["std"], np.float32)
    return ((x - mean) / std).astype(np.float32)


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read the sample image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def sample_feeds(inputs: Sequence[InputSpec], config: Mapping[str, Any], image: Path, batch: int) -> dict[str, Any]:
    """Feeds for every graph input: images from ``image``; ``scale_factor``/``im_shape`` as PaddleX sets
    them for an image given at the network's size. ValueError for an input we cannot make."""
    import cv2

    rgb = _load_rgb(image)
    feeds: dict[str, Any] = {}
    size: tuple[int, int] | None = None
    for name, shape, dtype in inputs:
        if len(shape) == 4:
            channels = shape[1] or 3
            h = shape[2] or DEFAULT_HW[0]
            w = shape[3] or DEFAULT_HW[1]
            if channels != 3:
                raise ValueError(f"input {name} {shape}: only 3-channel images can be sampled")
            resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            one = normalize(resized, config).transpose(2, 0, 1)
            items = [one, one[:, :, ::-1]]
            feeds[name] = np.ascontiguousarray(np.stack([items[i % 2] for i in range(batch)]).astype(dtype))
            size = (h, w)
    for name, shape, dtype in inputs:
        if name in feeds:
            continue
        if name == "scale_factor" and len(shape) == 2:
            feeds[name] = np.ones((batch, 2), dtype)
        elif name == "im_shape" and len(shape) == 2 and size is not None:
            feeds[name] = np.tile(np.asarray([size], dtype), (batch, 1))
        else:
            raise ValueError(f"cannot make a sample for input {name} {shape} ({dtype})")
    return feeds


def run_paddle(bundle_dir: Path, feeds: Mapping[str, Any]) -> list[np.ndarray]:
    """Paddle Inference on the bundle, oneDNN off, one thread: the reference (the predictor's output order)."""
    import paddle.inference as pi

    from visionpack.bundle import files

    found = files(bundle_dir)
    cfg = pi.Config(str(found.model_file), str(found.params_file))
    cfg.disable_gpu()
    cfg.disable_mkldnn()
    cfg.set_cpu_math_library_num_threads(1)
    if found.model_file.suffix == ".json":
        cfg.enable_new_ir(True)
        cfg.enable_new_executor()
    cfg.disable_glog_info()
    pred = pi.create_predictor(cfg)
    for name in pred.get_input_names():
        handle = pred.get_input_handle(name)
        x = np.ascontiguousarray(feeds[name])
        handle.reshape(list(x.shape))
        handle.copy_from_cpu(x)
    pred.run()
    return [np.asarray(pred.get_output_handle(n).copy_to_cpu()) for n in pred.get_output_names()]


def run_onnxruntime(model: bytes, feeds: Mapping[str, Any]) -> list[np.ndarray]:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # warnings about paddle2onnx's unused initialisers; errors raise anyway
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, dict(feeds))]


def run_openvino(model: bytes, feeds: Mapping[str, Any]) -> list[np.ndarray]:
    import openvino as ov

    core = ov.Core()
    # f32 pinned: on CPUs with AVX512_BF16 OpenVINO would pick bf16 by itself (docs/backends.md).
    compiled = core.compile_model(
        core.read_model(model=model), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    )
    result = compiled(dict(feeds))
    return [np.asarray(result[out]) for out in compiled.outputs]


RUNTIMES = {"onnxruntime": run_onnxruntime, "openvino": run_openvino}


def runtime_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in RUNTIMES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def compare(reference: Sequence[np.ndarray], got: Sequence[np.ndarray], task: str) -> dict[str, Any]:
    """{"max_abs_diff", "cosine", "topk_same"} over all outputs (worst output); ValueError when the
    outputs differ in number or shape (nothing to compare numerically)."""
    if len(got) != len(reference):
        raise ValueError(f"{len(got)} outputs, Paddle gives {len(reference)}")
    worst, cosine = 0.0, 1.0
    for i, (ref, out) in enumerate(zip(reference, got)):
        if tuple(out.shape) != tuple(ref.shape):
            raise ValueError(f"output {i} has shape {list(out.shape)}, Paddle's is {list(ref.shape)}")
        if task == "object_detection" and ref.ndim == 2 and ref.shape[1] >= 6:
            ref, out = box_order(ref), box_order(out)
        a, b = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError(f"output {i} holds NaN or infinity")
        if a.size:
            worst = max(worst, float(np.max(np.abs(a - b))))
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        cos = 1.0 if na == nb == 0.0 else (float(a @ b) / (na * nb) if na and nb else 0.0)
        cosine = min(cosine, cos)
    topk = None
    if task == "image_classification" and reference and reference[0].ndim == 2:
        k = min(TOPK, reference[0].shape[1])
        topk = bool(np.array_equal(_topk(reference[0], k), _topk(got[0], k)))
    return {"max_abs_diff": worst, "cosine": round(cosine, 9), "topk_same": topk}


def box_order(boxes: np.ndarray) -> np.ndarray:
    """Detector rows [class, score, x1, y1, x2, y2, ...] in one order: NMS output is a set, and
    OpenVINO lists the same boxes in another order than Paddle and ONNX Runtime."""
    keys = np.round(boxes[:, :4].astype(np.float64), 3)
    return boxes[np.lexsort((keys[:, 3], keys[:, 2], -keys[:, 1], keys[:, 0]))]


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def agrees(measured: Mapping[str, Any], tolerance: Mapping[str, float]) -> bool:
    return (
        measured["max_abs_diff"] <= tolerance["max_abs_diff"]
        and measured["cosine"] >= tolerance["cosine_min"]
        and measured.get("topk_same") is not False
    )


def parity_npz(feeds: Mapping[str, Any], outputs: Sequence[np.ndarray]) -> bytes:
    """parity.npz bytes, the same for the same arrays (np.savez stamps the time into the zip)."""
    arrays = {f"{INPUT_PREFIX}{k}": np.asarray(v) for k, v in sorted(feeds.items())}
    arrays.update({f"{OUTPUT_PREFIX}{i}": np.asarray(o) for i, o in enumerate(outputs)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data.getvalue())
    return buf.getvalue()


def read_parity(path: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """(feeds by input name, outputs in order) from a parity.npz."""
    with np.load(path, allow_pickle=False) as data:
        feeds = {k[len(INPUT_PREFIX) :]: data[k] for k in data.files if k.startswith(INPUT_PREFIX)}
        n = sum(1 for k in data.files if k.startswith(OUTPUT_PREFIX))
        outputs = [data[f"{OUTPUT_PREFIX}{i}"] for i in range(n)]
    return feeds, outputs
