"""Reader of dlib's binary serialization, enough to load a trained dlib DNN (``.dat``).

No dlib needed.  Facts come from dlib 19.24's headers (Debian ``libdlib-dev``):

* ``dlib/serialize.h`` -- integers: one control byte (bit 7 = negative, low 4 bits = number of
  magnitude bytes that follow, little endian).  ``bool``: ASCII ``'1'``/``'0'``.  ``std::string``:
  integer length + raw bytes.  ``float``/``double``: a ``float_details`` (``float_details.h``)
  written as *mantissa* (int64) then *exponent* (int16), value ``ldexp(mantissa, exponent)``,
  exponents 32000/32001/32002 meaning +inf/-inf/NaN.  (The header's prose says "exponent then
  mantissa"; the code it ships writes the mantissa first, and the code is what files contain.)
  A first byte with any of the bits 0x70 set marks the pre-2013 ASCII float format, which we
  refuse.
* ``dlib/cuda/tensor.h`` -- ``tensor``: int version 2, num_samples, k, nr, nc, then
  ``n*k*nr*nc`` little-endian IEEE float32.  ``alias_tensor``: int version 1 + the four dims.
* ``dlib/dnn/core.h`` -- network nesting (see :func:`parse_network`).
* ``dlib/dnn/layers.h``, ``input.h``, ``loss.h`` -- each layer's "details" start with a version
  string naming the layer (``con_5``, ``affine_2``, ``bn_con2`` ...); see ``_LAYER_READERS``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DlibFormatError",
    "Reader",
    "Layer",
    "Node",
    "parse_network",
    "bn_to_affine",
]

# float_details special exponents (dlib/float_details.h)
_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes are not what dlib's serializer would have written for the expected type."""


class Reader:
    """Cursor over a bytes object with dlib's primitive decoders."""

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self.pos = pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at offset {self.pos} (wanted {n} bytes)")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def read_int(self, max_bytes: int = 8) -> int:
        """Any C++ integral type (serialize.h pack_int): control byte + |value| little endian."""
        start = self.pos
        ctrl = self._take(1)[0]
        if ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at offset {start}")
        size = ctrl & 0x0F
        if size == 0 or size > max_bytes:
            raise DlibFormatError(f"integer of {size} bytes at offset {start} (max {max_bytes})")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def read_bool(self) -> bool:
        ch = self._take(1)[0]
        if ch == ord("1"):
            return True
        if ch == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte 0x{ch:02x} at offset {self.pos - 1}")

    def read_float(self) -> float:
        """float/double via float_details: mantissa (int64) then exponent (int16)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old ASCII float format at offset {self.pos} is not supported")
        mantissa = self.read_int(8)
        exponent = self.read_int(2)
        if exponent < _IS_INF:
            return math.ldexp(float(mantissa), exponent)
        if exponent == _IS_INF:
            return math.inf
        if exponent == _IS_NINF:
            return -math.inf
        return math.nan

    def read_string(self, max_len: int = 1 << 20) -> str:
        start = self.pos
        n = self.read_int()
        if n < 0 or n > max_len:
            raise DlibFormatError(f"string length {n} at offset {start}")
        raw = bytes(self._take(n))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"non-ASCII string at offset {start}") from exc

    def expect_string(self, *allowed: str) -> str:
        start = self.pos
        s = self.read_string()
        if s not in allowed:
            raise DlibFormatError(f"expected one of {allowed} at offset {start}, found {s!r}")
        return s

    def read_version(self, *allowed: int, what: str = "object") -> int:
        start = self.pos
        v = self.read_int()
        if v not in allowed:
            raise DlibFormatError(f"{what}: version {v} at offset {start}, expected {allowed}")
        return v

    def read_tensor(self) -> np.ndarray:
        """dlib::tensor (version 2): dims then float32 LE data, returned as (n, k, nr, nc)."""
        self.read_version(2, what="tensor")
        dims = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in dims):
            raise DlibFormatError(f"negative tensor dims {dims}")
        count = int(np.prod(dims, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        self.read_version(1, what="alias_tensor")
        return tuple(self.read_int() for _ in range(4))  # type: ignore[return-value]


@dataclass
class Layer:
    """One computational layer's details: ``kind`` is dlib's version string."""

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


# --- layer details readers (one per version string) ---------------------------------------


def _split(params: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    flat = params.reshape(-1)
    out, off = [], 0
    for shp in shapes:
        n = int(np.prod(shp, dtype=np.int64))
        if off + n > flat.size:
            raise DlibFormatError(f"params of {flat.size} floats too small for {list(shapes)}")
        out.append(flat[off : off + n].reshape(shp).copy())
        off += n
    return out


def _read_con(r: Reader, kind: str) -> Layer:
    # layers.h con_: params, num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x,
    # filters (alias), biases (alias), 4 float multipliers, [use_bias if con_5]
    params = r.read_tensor()
    a = {k: r.read_int() for k in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
    fshape = r.read_alias_tensor()
    bshape = r.read_alias_tensor()
    for _ in range(4):
        r.read_float()
    a["use_bias"] = r.read_bool() if kind == "con_5" else True
    shapes = [fshape] + ([bshape] if a["use_bias"] else [])
    parts = _split(params, shapes)
    t = {"filters": parts[0]}
    if a["use_bias"]:
        t["biases"] = parts[1].reshape(-1)
    return Layer("con", a, t)


def _read_fc(r: Reader, kind: str) -> Layer:
    # layers.h fc_: num_outputs, num_inputs, params, weights (alias), biases (alias),
    # bias_mode (int, 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS), 4 float multipliers, [use_bias if fc_3]
    a = {"num_outputs": r.read_int(), "num_inputs": r.read_int()}
    params = r.read_tensor()
    wshape = r.read_alias_tensor()
    bshape = r.read_alias_tensor()
    a["bias_mode"] = r.read_int()
    for _ in range(4):
        r.read_float()
    a["use_bias"] = r.read_bool() if kind == "fc_3" else True
    has_bias = a["bias_mode"] == 0 and a["use_bias"]
    parts = _split(params, [wshape] + ([bshape] if has_bias else []))
    # weights alias is (num_inputs, num_outputs, 1, 1): output = input x W (tt::gemm in fc_::forward)
    t = {"weights": parts[0].reshape(a["num_inputs"], a["num_outputs"])}
    if has_bias:
        t["biases"] = parts[1].reshape(-1)
    return Layer("fc", a, t)


def _read_affine(r: Reader, kind: str) -> Layer:
    # layers.h affine_: params, gamma (alias), beta (alias), mode (0 CONV_MODE, 1 FC_MODE), [disabled]
    params = r.read_tensor()
    gshape = r.read_alias_tensor()
    bshape = r.read_alias_tensor()
    mode = r.read_int()
    disabled = r.read_bool() if kind == "affine_2" else False
    a = {"mode": "conv" if mode == 0 else "fc", "disabled": disabled}
    if disabled:
        return Layer("affine", a, {})
    gamma, beta = _split(params, [gshape, bshape])
    return Layer("affine", a, {"gamma": gamma.reshape(gshape), "beta": beta.reshape(bshape)})


def bn_to_affine(
    gamma: np.ndarray, beta: np.ndarray, running_means: np.ndarray, running_variances: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """What affine_(const bn_&) computes: g = gamma/sqrt(var+eps), b = beta - g*mean."""
    g = gamma / np.sqrt(running_variances + np.float32(eps))
    return g.astype(np.float32), (beta - g * running_means).astype(np.float32)


def _read_bn(r: Reader, kind: str) -> Layer:
    # layers.h bn_: params, gamma, beta (aliases), means, invstds, running_means, running_variances
    # (tensors), num_updates, running_stats_window_size, 4 float multipliers, eps (float)
    params = r.read_tensor()
    gshape = r.read_alias_tensor()
    bshape = r.read_alias_tensor()
    r.read_tensor()  # means (of the last training batch)
    r.read_tensor()  # invstds
    rm = r.read_tensor()
    rv = r.read_tensor()
    r.read_int()
    r.read_int()
    for _ in range(4):
        r.read_float()
    eps = r.read_float()
    gamma, beta = _split(params, [gshape, bshape])
    g, b = bn_to_affine(gamma.reshape(-1), beta.reshape(-1), rm.reshape(-1), rv.reshape(-1), eps)
    a = {"mode": "conv" if kind == "bn_con2" else "fc", "disabled": False, "from_bn": True, "eps": eps}
    return Layer("affine", a, {"gamma": g.reshape(gshape), "beta": b.reshape(bshape)})


def _read_pool(r: Reader, kind: str) -> Layer:
    # layers.h max_pool_/avg_pool_: nr, nc, stride_y, stride_x, padding_y, padding_x (nr=nc=0: whole image)
    a = {k: r.read_int() for k in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}
    return Layer("max_pool" if kind.startswith("max") else "avg_pool", a)


def _read_input_rgb(r: Reader, kind: str) -> Layer:
    # input.h: avg_red, avg_green, avg_blue (floats) [, nr, nc for _sized]; to_tensor computes
    # (pixel - avg) / 256 per channel, channels in R, G, B order.
    a: dict[str, Any] = {"avg_rgb": [r.read_float() for _ in range(3)], "divisor": 256.0}
    if kind == "input_rgb_image_sized":
        a["nr"], a["nc"] = r.read_int(), r.read_int()
    return Layer("input_rgb", a)


def _read_loss_metric(r: Reader, kind: str) -> Layer:
    # loss.h loss_metric_: "loss_metric_" had hard-coded margin 0.1 / dist_thresh 0.75
    if kind == "loss_metric_2":
        return Layer("loss_metric", {"margin": r.read_float(), "dist_thresh": r.read_float()})
    return Layer("loss_metric", {"margin": 0.1, "dist_thresh": 0.75})


def _no_details(name: str) -> Callable[[Reader, str], Layer]:
    return lambda r, kind: Layer(name)


_LAYER_READERS: dict[str, Callable[[Reader, str], Layer]] = {
    "con_4": _read_con,
    "con_5": _read_con,
    "fc_2": _read_fc,
    "fc_3": _read_fc,
    "affine_": _read_affine,
    "affine_2": _read_affine,
    "bn_con2": _read_bn,
    "bn_fc2": _read_bn,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "relu_": _no_details("relu"),
    "add_prev_": _no_details("add_prev"),
    "input_rgb_image": _read_input_rgb,
    "input_rgb_image_sized": _read_input_rgb,
    "loss_metric_": _read_loss_metric,
    "loss_metric_2": _read_loss_metric,
}


def read_layer_details(r: Reader, allowed: Sequence[str] | None = None) -> Layer:
    start = r.pos
    kind = r.read_string()
    if allowed is not None and kind not in allowed:
        raise DlibFormatError(f"expected layer {tuple(allowed)} at offset {start}, found {kind!r}")
    reader = _LAYER_READERS.get(kind)
    if reader is None:
        raise DlibFormatError(f"unsupported dlib layer {kind!r} at offset {start}")
    return reader(r, kind)


# --- network structure ------------------------------------------------------------------


@dataclass
class Node:
    """One level of dlib's nested network type, listed from the top (just under the loss) down.

    ``op`` is ``"layer"`` (add_layer; ``expect`` = allowed version strings of its details),
    ``"tag"`` (add_tag_layer<tagN>), ``"skip"`` (add_skip_layer<tagN>) or ``"input"``.
    ``n`` is the tag id for tag/skip/add_prev.  The file does not record tag ids or which
    levels are tags, so the caller spells the type, as dlib's own C++ does.
    """

    op: str
    expect: tuple[str, ...] = ()
    n: int = 0
    layer: Layer | None = None


def parse_network(
    data: bytes, nodes: Sequence[Node], loss: Sequence[str] | None = None
) -> tuple[Layer | None, list[Node]]:
    """Read ``add_loss_layer<LOSS, net>`` (when ``loss`` is given) or a bare net from ``data``.

    core.h nesting: add_layer (version 1|2) writes version, *subnet*, details, 3 bools
    (this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled),
    x_grad, cached_output, [params_grad if v2].  add_layer directly over the input layer
    (version 2|3) writes version, input layer, details, 3 bools, x_grad, cached_output,
    grad_final, [sample_expansion_factor if v3].  add_tag_layer (v1) and add_skip_layer (v1)
    write version + subnet; a tag directly over the input (v1|2) writes version, input layer,
    cached_output, grad_final, gradient_input_is_stale, [sample_expansion_factor if v2].
    Since every level writes its version before its subnet and its details after, we read
    all versions top-down, then details bottom-up.  Returns (loss layer, nodes with .layer set).
    """
    nodes = [Node(n.op, tuple(n.expect), n.n) for n in nodes]
    if not nodes or nodes[-1].op != "input" or any(n.op == "input" for n in nodes[:-1]):
        raise DlibFormatError("network spec must end with exactly one input node")
    if len(nodes) < 2:
        raise DlibFormatError("network spec needs at least one level above the input")
    r = Reader(data)
    loss_layer = None
    if loss is not None:
        r.read_version(1, what="add_loss_layer")
        loss_layer = read_layer_details(r, loss)
    versions: list[int] = []
    for i, node in enumerate(nodes[:-1]):
        over_input = i == len(nodes) - 2
        if node.op == "layer":
            allowed = (2, 3) if over_input else (1, 2)
        elif node.op == "tag":
            allowed = (1, 2) if over_input else (1,)
        elif node.op == "skip":
            if over_input:
                raise DlibFormatError("a skip layer cannot sit directly on the input")
            allowed = (1,)
        else:
            raise DlibFormatError(f"unknown node op {node.op!r}")
        versions.append(r.read_version(*allowed, what=f"level {i} ({node.op})"))
    nodes[-1].layer = read_layer_details(r, nodes[-1].expect or None)
    for i in range(len(nodes) - 2, -1, -1):
        node, v = nodes[i], versions[i]
        over_input = i == len(nodes) - 2
        if node.op == "tag":
            if over_input:
                r.read_tensor()
                r.read_tensor()
                r.read_bool()
                if v >= 2:
                    r.read_int()
            continue
        if node.op == "skip":
            continue
        node.layer = read_layer_details(r, node.expect or None)
        for _ in range(3):
            r.read_bool()
        r.read_tensor()  # x_grad
        r.read_tensor()  # cached_output
        if over_input:
            r.read_tensor()  # grad_final
            if v >= 3:
                r.read_int()  # _sample_expansion_factor
        elif v == 2:
            r.read_tensor()  # params_grad
    if not r.at_end():
        raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
    return loss_layer, nodes


def float32_le(values: Sequence[float]) -> bytes:
    """Helper for writers/tests: raw little-endian float32 bytes."""
    return struct.pack(f"<{len(values)}f", *values)
