"""Editing an ONNX file without the onnx package (not in the runtime venv): a model that still loads
everywhere but answers otherwise, for tests of what happens when a backend disagrees with Paddle."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, value start, value end) of one protobuf message."""
    i = start
    while i < end:
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, j = _varint(buf, i)
            yield field, wire, i, j
        elif wire == 2:
            n, i = _varint(buf, i)
            j = i + n
            yield field, wire, i, j
        elif wire in (1, 5):
            j = i + (8 if wire == 1 else 4)
            yield field, wire, i, j
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        i = j


def _raw_data(buf: bytes, tensor: tuple[int, int]) -> list[tuple[int, int, int]]:
    return [(e - s, s, e) for f, w, s, e in _fields(buf, *tensor) if f == 9 and w == 2]  # TensorProto.raw_data


def perturb_onnx(path: Path) -> None:
    """Scale the largest weight tensor of an ONNX model by 1.5, in place: a model that loads
    everywhere and answers differently. Weights sit in GraphProto.initializer (5) or in Constant
    nodes (GraphProto.node 1 -> NodeProto.attribute 5 -> AttributeProto.t 5); the bytes keep
    their length, so no length prefix changes."""
    buf = bytearray(path.read_bytes())
    graph = next((s, e) for f, w, s, e in _fields(buf, 0, len(buf)) if f == 7 and w == 2)  # ModelProto.graph
    tensors = [(s, e) for f, w, s, e in _fields(buf, *graph) if f == 5 and w == 2]
    for f, w, s, e in _fields(buf, *graph):
        if f == 1 and w == 2:
            for fa, wa, sa, ea in _fields(buf, s, e):
                if fa == 5 and wa == 2:
                    tensors += [(st, et) for ft, wt, st, et in _fields(buf, sa, ea) if ft == 5 and wt == 2]
    _, start, end = max(raw for t in tensors for raw in _raw_data(buf, t))
    values = np.frombuffer(bytes(buf[start:end]), "<f4") * np.float32(1.5)
    buf[start:end] = values.astype("<f4").tobytes()
    path.write_bytes(bytes(buf))
