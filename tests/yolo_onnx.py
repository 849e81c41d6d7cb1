"""Hand-built stand-ins of Ultralytics pose exports (no onnx package in the dev venv, no ultralytics): an ONNX
file with Ultralytics' metadata_props whose output is a given [1, C, A] tensor for every image of a
batch, and a ``*_paddle_model/`` folder's layout and metadata.yaml.

The ONNX graph: out = table + 0 * reshape(mean(images over C,H,W), [-1, 1, 1]), so it runs on every
backend, takes any batch when the batch dimension is symbolic, and answers ``table`` exactly.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

FLOAT, INT64 = 1, 7


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wire: int) -> bytes:
    return _varint(num << 3 | wire)


def _int(num: int, value: int) -> bytes:
    return _key(num, 0) + _varint(value)


def _bytes(num: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(num, 2) + _varint(len(data)) + data


def _tensor(name: str, arr: np.ndarray) -> bytes:
    dt = INT64 if arr.dtype == np.int64 else FLOAT
    arr = arr.astype(np.int64 if dt == INT64 else np.float32)
    body = b"".join(_int(1, d) for d in arr.shape) + _int(2, dt) + _bytes(8, name)
    return body + _bytes(9, arr.tobytes())


def _value_info(name: str, shape: Sequence[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor = _int(1, FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor))


def _node(op: str, inputs: Sequence[str], outputs: Sequence[str], attrs: bytes = b"") -> bytes:
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    return body + _bytes(4, op) + attrs


def _ints_attr(name: str, values: Sequence[int]) -> bytes:
    return _bytes(5, _bytes(1, name) + b"".join(_int(8, v) for v in values) + _int(20, 7))


def metadata(kpt_shape=(17, 3), imgsz=(64, 64), names=None, task="pose", **extra: Any) -> dict[str, Any]:
    meta = {
        "description": "Ultralytics YOLOv8n-pose model",
        "author": "Ultralytics",
        "version": "8.4.190",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": list(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz,
        "names": names or {0: "person"},
        "kpt_shape": list(kpt_shape),
        "end2end": False,
    }
    meta.update(extra)
    return meta


def write_onnx(
    path: Path,
    table: np.ndarray,
    meta: dict[str, Any] | None,
    *,
    batch: int | str = 1,
    in_shape: Sequence[int | str] | None = None,
    out_shape: Sequence[int | str] | None = None,
) -> Path:
    """An ONNX model answering ``table`` ([C, A]) for each image; metadata_props as Ultralytics writes them."""
    table = np.asarray(table, np.float32)
    c, a = table.shape
    size = (meta or {}).get("imgsz")
    h, w = size if isinstance(size, list) and len(size) == 2 else (64, 64)
    nodes = [
        _node("ReduceMean", ["images"], ["m"], _ints_attr("axes", [1, 2, 3])),
        _node("Reshape", ["m", "shape"], ["r"]),
        _node("Mul", ["r", "zero"], ["z"]),
        _node("Add", ["table", "z"], ["output0"]),
    ]
    inits = [
        _tensor("shape", np.array([-1, 1, 1], np.int64)),
        _tensor("zero", np.zeros((), np.float32)),
        _tensor("table", table[None]),
    ]
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "main_graph")
    graph += b"".join(_bytes(5, t) for t in inits)
    graph += _bytes(11, _value_info("images", in_shape or [batch, 3, h, w]))
    graph += _bytes(12, _value_info("output0", out_shape or [batch, c, a]))
    model = _int(1, 8) + _bytes(2, "pytorch") + _bytes(7, graph) + _bytes(8, _int(2, 17) + _bytes(1, ""))
    for key, value in (meta or {}).items():
        text = value if isinstance(value, str) else repr(value)
        model += _bytes(14, _bytes(1, key) + _bytes(2, text))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model)
    return path


def write_paddle_export(folder: Path, meta: dict[str, Any]) -> Path:
    """A ``*_paddle_model/`` folder's layout (the graph files are placeholders: for fake engines)."""
    (folder / "inference_model").mkdir(parents=True, exist_ok=True)
    (folder / "inference_model" / "model.json").write_text("{}")
    (folder / "inference_model" / "model.pdiparams").write_bytes(b"\0")
    (folder / "model.pdparams").write_bytes(b"\0")
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


def pose_table(rows: Sequence[Sequence[float]], anchors: int, kpt_shape=(17, 3), nc: int = 1) -> np.ndarray:
    """A raw output [C, A]: the given rows (cx, cy, w, h, scores..., keypoints...) at the first anchors,
    every other anchor scored 0."""
    k, d = kpt_shape
    c = 4 + nc + k * d
    out = np.zeros((c, anchors), np.float32)
    out[2:4] = 1.0
    for i, r in enumerate(rows):
        out[: len(r), i] = r
    return out


def pack_float(x: float) -> float:
    """x rounded to float32, as the model would hold it."""
    return float(struct.unpack("f", struct.pack("f", x))[0])
