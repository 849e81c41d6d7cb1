"""An Ultralytics pose export as ``yolo export`` wrote it, read as a bundle: its files, its metadata (the ONNX
file's ``metadata_props`` or the Paddle folder's ``metadata.yaml``) and the shapes its graph declares.

Everything the pipeline needs comes from the export itself (task, kpt_shape, imgsz, stride, names,
batch); whatever it cannot serve is refused here with a ModelInvalid saying why, so a wrong model
stops the deploy at install, not at the first request. The ONNX file is read with a few lines of
protobuf wire format (below) so that no backend's library is needed to read it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ...bundle import CONFIG_FILE, ONNX, PADDLE, Bundle, exported_model
from ...errors import ModelInvalid

PADDLE_METADATA = "metadata.yaml"  # bundle.EXPORT_METADATA
PADDLE_DIR = "inference_model"
PADDLE_GRAPH, PADDLE_PARAMS = "model.json", "model.pdiparams"
PADDLE_SUFFIX = "_paddle_model"
TASK = "pose"
HOW = "export it with `yolo export model=<your>-pose.pt format=onnx` (or format=paddle) and copy the output unchanged"

# ONNX ModelProto / GraphProto / ValueInfoProto field numbers (onnx.proto3).
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_INPUT, _GRAPH_OUTPUT = 11, 12
# A fixed size, or a symbolic (dynamic) dimension's name. Union, not `int | str`: a module-level alias
# is evaluated at import, and the runtime may be CPython 3.9.
Dim = Union[int, str]


@dataclass(frozen=True)
class ExportBundle(Bundle):
    """A :class:`Bundle` whose formats are the export's files (its ``config`` is the export's metadata)."""

    onnx: Path | None = None
    paddle: Path | None = None
    inputs: tuple[tuple[Dim, ...], ...] = ()  # the ONNX graph's declared input shapes (Paddle: none)
    outputs: tuple[tuple[Dim, ...], ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def formats(self) -> dict[str, Path]:
        out = {}
        if self.paddle is not None:
            out[PADDLE] = self.paddle
        if self.onnx is not None:
            out[ONNX] = self.onnx
        return out


def is_export(path: str | Path) -> bool:
    """Whether ``path`` holds an Ultralytics export rather than a PaddleX bundle (no inference.yml)."""
    p = Path(path)
    return p.is_dir() and not (p / CONFIG_FILE).exists() and exported_model(p)


def load_export(path: str | Path) -> ExportBundle:
    """The export in directory ``path``: a ``*.onnx`` and/or a ``*_paddle_model/`` folder (or that folder itself)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelInvalid(f"model {path} is not a directory")
    onnx = sorted(p for p in path.glob("*.onnx") if p.is_file())
    if len(onnx) > 1:
        raise ModelInvalid(f"model {path} holds several ONNX files ({', '.join(p.name for p in onnx)}): keep one")
    paddle = _paddle_dir(path)
    if onnx:
        meta = onnx_metadata(onnx[0])
        inputs, outputs = onnx_shapes(onnx[0])
        where = str(onnx[0])
    elif paddle is not None:
        meta, inputs, outputs = paddle_metadata(paddle), (), ()
        where = str(paddle / PADDLE_METADATA)
    else:
        raise ModelInvalid(f"model {path} holds no Ultralytics export (*.onnx or *{PADDLE_SUFFIX}/): {HOW}")
    check_metadata(meta, where)
    graph = paddle / PADDLE_DIR / PADDLE_GRAPH if paddle is not None else None
    params = paddle / PADDLE_DIR / PADDLE_PARAMS if paddle is not None else path / "-"
    return ExportBundle(
        path=path,
        model_file=onnx[0] if onnx else graph or path,
        params_file=params,
        config={"Global": {"model_name": onnx[0].stem if onnx else (paddle or path).name}},
        # The ONNX file runs on ONNX Runtime (or OpenVINO) unless the deploy says otherwise.
        manifest={"task": TASK, "engine": "onnxruntime" if onnx else "paddle"},
        onnx=onnx[0] if onnx else None,
        paddle=graph,
        inputs=inputs,
        outputs=outputs,
        meta=meta,
    )


def _paddle_dir(path: Path) -> Path | None:
    """The ``*_paddle_model/`` folder: ``path`` itself, or its one such child."""
    if (path / PADDLE_METADATA).is_file() and (path / PADDLE_DIR).is_dir():
        return _checked_paddle(path)
    found = sorted(p for p in path.glob(f"*{PADDLE_SUFFIX}") if p.is_dir())
    if len(found) > 1:
        raise ModelInvalid(f"model {path} holds several Paddle exports ({', '.join(p.name for p in found)}): keep one")
    return _checked_paddle(found[0]) if found else None


def _checked_paddle(folder: Path) -> Path:
    need = [PADDLE_METADATA, f"{PADDLE_DIR}/{PADDLE_GRAPH}", f"{PADDLE_DIR}/{PADDLE_PARAMS}"]
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise ModelInvalid(f"Paddle export {folder} lacks {', '.join(missing)}: {HOW}")
    return folder


def paddle_metadata(folder: Path) -> dict[str, Any]:
    import yaml

    f = folder / PADDLE_METADATA
    try:
        meta = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise ModelInvalid(f"{f}: not readable YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelInvalid(f"{f}: top level must be a mapping")
    return meta


def onnx_metadata(onnx: Path) -> dict[str, Any]:
    """The model's ``metadata_props``, each value read as the Python literal Ultralytics wrote (else kept as text)."""
    out: dict[str, Any] = {}
    for num, value in _fields(_read(onnx), onnx):
        if num != _MODEL_METADATA or not isinstance(value, memoryview):
            continue
        entry = {n: bytes(v).decode("utf-8", "replace") for n, v in _fields(value, onnx) if isinstance(v, memoryview)}
        key, text = entry.get(1, ""), entry.get(2, "")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = text
    return out


def onnx_shapes(onnx: Path) -> tuple[tuple[tuple[Dim, ...], ...], tuple[tuple[Dim, ...], ...]]:
    """The graph's declared (input shapes, output shapes); a dynamic dimension is its name."""
    data = _read(onnx)
    graph = next((v for n, v in _fields(data, onnx) if n == _MODEL_GRAPH and isinstance(v, memoryview)), None)
    if graph is None:
        raise ModelInvalid(f"{onnx}: not an ONNX model (no graph)")
    ins: list[tuple[Dim, ...]] = []
    outs: list[tuple[Dim, ...]] = []
    for num, value in _fields(graph, onnx):
        if num in (_GRAPH_INPUT, _GRAPH_OUTPUT) and isinstance(value, memoryview):
            (ins if num == _GRAPH_INPUT else outs).append(_value_shape(value, onnx))
    return tuple(ins), tuple(outs)


def _value_shape(info: memoryview, where: Path) -> tuple[Dim, ...]:
    # ValueInfoProto.type(2) -> TypeProto.tensor_type(1) -> shape(2) -> dim(1) -> dim_value(1) | dim_param(2)
    node = info
    for want in (2, 1, 2):
        inner = next((v for n, v in _fields(node, where) if n == want and isinstance(v, memoryview)), None)
        if inner is None:
            return ()
        node = inner
    dims: list[Dim] = []
    for n, dim in _fields(node, where):
        if n != 1 or not isinstance(dim, memoryview):
            continue
        parts = dict(_fields(dim, where))
        value = parts.get(1)
        name = parts.get(2)
        dims.append(value if isinstance(value, int) else bytes(name).decode() if isinstance(name, memoryview) else "?")
    return tuple(dims)


def _read(onnx: Path) -> memoryview:
    try:
        return memoryview(onnx.read_bytes())
    except OSError as exc:
        raise ModelInvalid(f"{onnx}: cannot read it: {exc}") from None


def _fields(buf: memoryview, where: Path) -> list[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message: varints as int, length-delimited as a view."""
    out: list[tuple[int, int | memoryview]] = []
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i, where)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, where)
            out.append((num, value))
        elif wire == 2:
            size, i = _varint(buf, i, where)
            if i + size > end:
                raise ModelInvalid(f"{where}: not an ONNX model (truncated field {num})")
            out.append((num, buf[i : i + size]))
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ModelInvalid(f"{where}: not an ONNX model (wire type {wire})")
    return out


def _varint(buf: memoryview, i: int, where: Path) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ModelInvalid(f"{where}: not an ONNX model (bad varint)")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


@dataclass(frozen=True)
class Spec:
    """What the metadata says: the pipeline's whole configuration."""

    kpt_shape: tuple[int, int]
    imgsz: tuple[int, int]
    names: tuple[str, ...]
    stride: int
    batch: int


def check_metadata(meta: Mapping[str, Any], where: str) -> Spec:
    """The export's :class:`Spec`, or ModelInvalid naming what is not a servable pose export."""
    if not meta:
        raise ModelInvalid(f"{where}: no Ultralytics metadata (task, kpt_shape, imgsz): {HOW}")
    task = meta.get("task")
    if task != TASK:
        raise ModelInvalid(
            f"{where}: an Ultralytics {task!r} export; the keypoint service serves pose exports "
            f"(task 'pose', e.g. yolov8n-pose): {HOW}"
        )
    if str(meta.get("end2end", False)).lower() == "true" or meta.get("nms") is True:
        raise ModelInvalid(f"{where}: exported with NMS inside the graph (end2end/nms=True); export with nms=False")
    kpt: Any = meta.get("kpt_shape")
    if not (_ints(kpt, 2) and kpt[0] >= 1 and kpt[1] in (2, 3)):
        raise ModelInvalid(f"{where}: kpt_shape must be [K, 2] or [K, 3], got {kpt!r}")
    imgsz: Any = meta.get("imgsz")
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if not (_ints(imgsz, 2) and min(imgsz) >= 1):
        raise ModelInvalid(f"{where}: imgsz must be [height, width], got {imgsz!r}")
    names = meta.get("names")
    if not isinstance(names, dict) or not names or sorted(names) != list(range(len(names))):
        raise ModelInvalid(f"{where}: names must map class ids 0..n-1 to names, got {names!r}")
    stride = meta.get("stride", 32)
    batch = meta.get("batch", 1)
    if not (_ints([stride, batch], 2) and stride >= 1 and batch >= 1):
        raise ModelInvalid(f"{where}: stride and batch must be positive integers, got {stride!r}, {batch!r}")
    return Spec(
        (int(kpt[0]), int(kpt[1])),
        (int(imgsz[0]), int(imgsz[1])),
        tuple(str(names[i]) for i in range(len(names))),
        int(stride),
        int(batch),
    )


def _ints(value: Any, n: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
