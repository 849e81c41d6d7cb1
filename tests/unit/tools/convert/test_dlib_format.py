"""tools/convert/dlib_format.py against byte streams written the way dlib's headers say.

The writer below is an independent re-statement of dlib/serialize.h, float_details.h,
cuda/tensor.h and dnn/core.h (not a copy of the reader), so reader bugs cannot cancel out.
"""

from __future__ import annotations

import math
import struct
import sys

import numpy as np
import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import dlib_format as df  # noqa: E402

# --- an independent writer ---------------------------------------------------------------


def w_int(v: int) -> bytes:
    neg = v < 0
    mag = -v if neg else v
    body = b""
    while True:
        body += bytes([mag & 0xFF])
        mag >>= 8
        if mag == 0:
            break
    return bytes([len(body) | (0x80 if neg else 0)]) + body


def w_float(v: float) -> bytes:
    # float_details(float): mantissa = frexp(v)*2^24 (digits of float), exponent = e - 24,
    # then low zero bytes of the mantissa shifted off; written mantissa first, then exponent
    if math.isinf(v):
        return w_int(0) + w_int(32000 if v > 0 else 32001)
    if math.isnan(v):
        return w_int(0) + w_int(32002)
    m, e = math.frexp(float(np.float32(v)))
    mant, exp = int(m * (1 << 24)), e - 24
    for _ in range(8):
        if mant & 0xFF or mant == 0:
            break
        mant >>= 8
        exp += 8
    return w_int(mant) + w_int(exp)


def w_bool(b: bool) -> bytes:
    return b"1" if b else b"0"


def w_str(s: str) -> bytes:
    return w_int(len(s)) + s.encode("ascii")


def w_tensor(a: np.ndarray) -> bytes:
    a = np.asarray(a, np.float32)
    dims = (a.shape + (1, 1, 1, 1))[:4] if a.ndim < 4 else a.shape
    return w_int(2) + b"".join(w_int(d) for d in dims) + a.astype("<f4").tobytes()


def w_alias(*dims: int) -> bytes:
    return w_int(1) + b"".join(w_int(d) for d in dims)


def w_con(filters: np.ndarray, bias: np.ndarray, stride: int, pad: int, version: str = "con_5") -> bytes:
    n, k, nr, nc = filters.shape
    params = np.concatenate([filters.reshape(-1), bias.reshape(-1)])
    out = w_str(version) + w_tensor(params.reshape(1, -1, 1, 1))
    out += b"".join(w_int(v) for v in (n, nr, nc, stride, stride, pad, pad))
    out += w_alias(n, k, nr, nc) + w_alias(1, n, 1, 1)
    out += b"".join(w_float(v) for v in (1.0, 1.0, 1.0, 0.0))
    return out + (w_bool(True) if version == "con_5" else b"")


def w_layer_tail(over_input: bool, version: int) -> bytes:
    # 3 bools, x_grad, cached_output, then params_grad (v2) or grad_final [+ sample factor (v3)]
    empty = w_tensor(np.zeros((0, 0, 0, 0), np.float32))
    out = w_bool(True) + w_bool(False) + w_bool(False) + empty + empty
    if over_input:
        return out + empty + (w_int(1) if version >= 3 else b"")
    return out + (empty if version == 2 else b"")


# --- primitives --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,encoded",
    [
        (0, b"\x01\x00"),
        (1, b"\x01\x01"),
        (255, b"\x01\xff"),
        (256, b"\x02\x00\x01"),
        (-5, b"\x81\x05"),
        (2**40 + 3, b"\x06\x03\x00\x00\x00\x00\x01"),
        (-(2**63), b"\x88" + b"\x00" * 7 + b"\x80"),
    ],
)
def test_int_encoding(value: int, encoded: bytes) -> None:
    assert w_int(value) == encoded
    r = df.Reader(encoded)
    assert r.read_int() == value and r.at_end()


@pytest.mark.parametrize("raw", [b"\x00", b"\x09" + b"\x00" * 9, b"\x11\x00", b"\x03\x01\x02"])
def test_int_errors(raw: bytes) -> None:
    with pytest.raises(df.DlibFormatError):
        df.Reader(raw).read_int()


def test_int_max_bytes_for_int16() -> None:
    with pytest.raises(df.DlibFormatError):
        df.Reader(w_int(1 << 20)).read_int(max_bytes=2)


def test_float_bytes_from_the_real_model_file() -> None:
    # loss_metric_2 margin / dist_thresh as they sit at offset 0x13 of
    # dlib_face_recognition_resnet_model_v1.dat: mantissa 0xa3d70a, exponent -28 / 0x99999a, -24
    r = df.Reader(bytes.fromhex("030ad7a3811c039a99998118"))
    assert r.read_float() == float(np.float32(0.04))  # exact: dlib wrote float32 values
    assert r.read_float() == float(np.float32(0.6))
    assert r.at_end()


def test_float_round_trip() -> None:
    rng = np.random.default_rng(1)
    values = list(rng.normal(0, 100, 200).astype(np.float32)) + [0.0, 1.0, -1.0, 1e-30, 3.4e38, 0.5, 256.0]
    stream = b"".join(w_float(v) for v in values)
    r = df.Reader(stream)
    got = [r.read_float() for _ in values]
    assert r.at_end()
    np.testing.assert_array_equal(np.float32(got), np.float32(values))


def test_float_specials_and_ascii_refused() -> None:
    r = df.Reader(w_float(math.inf) + w_float(-math.inf) + w_float(math.nan))
    assert r.read_float() == math.inf and r.read_float() == -math.inf and math.isnan(r.read_float())
    with pytest.raises(df.DlibFormatError, match="ASCII"):
        df.Reader(b"1.5 ").read_float()


def test_bool_string() -> None:
    r = df.Reader(w_bool(True) + w_bool(False) + w_str("con_5") + w_str(""))
    assert r.read_bool() is True and r.read_bool() is False
    assert r.read_string() == "con_5" and r.read_string() == ""
    with pytest.raises(df.DlibFormatError):
        df.Reader(b"x").read_bool()
    with pytest.raises(df.DlibFormatError):
        df.Reader(w_int(10) + b"abc").read_string()  # truncated
    with pytest.raises(df.DlibFormatError):
        df.Reader(w_str("relu_")).expect_string("con_5")


def test_tensor_and_alias() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) - 7.5
    r = df.Reader(w_tensor(a) + w_alias(1, 3, 1, 1))
    np.testing.assert_array_equal(r.read_tensor(), a)
    assert r.read_alias_tensor() == (1, 3, 1, 1)
    bad = w_int(1) + w_tensor(a)[2:]  # version 1 is not a tensor
    with pytest.raises(df.DlibFormatError, match="version"):
        df.Reader(bad).read_tensor()
    with pytest.raises(df.DlibFormatError, match="end of data"):
        df.Reader(w_tensor(a)[:-3]).read_tensor()


# --- layers ------------------------------------------------------------------------------


def test_con_layer_splits_params() -> None:
    rng = np.random.default_rng(2)
    f, b = rng.normal(size=(4, 3, 3, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    for version in ("con_4", "con_5"):
        layer = df.read_layer_details(df.Reader(w_con(f, b, 2, 0, version)))
        assert layer.kind == "con" and layer.attrs["stride_y"] == 2 and layer.attrs["padding_x"] == 0
        np.testing.assert_array_equal(layer.tensors["filters"], f)
        np.testing.assert_array_equal(layer.tensors["biases"], b)


def test_bn_becomes_affine_like_dlib() -> None:
    rng = np.random.default_rng(3)
    k = 5
    gamma, beta = rng.normal(size=k).astype(np.float32), rng.normal(size=k).astype(np.float32)
    mean, var = rng.normal(size=k).astype(np.float32), rng.uniform(0.1, 2, k).astype(np.float32)
    eps = 1e-5
    stream = (
        w_str("bn_con2")
        + w_tensor(np.concatenate([gamma, beta]).reshape(1, -1, 1, 1))
        + w_alias(1, k, 1, 1)
        + w_alias(1, k, 1, 1)
        + w_tensor(np.zeros((1, k, 1, 1)))
        + w_tensor(np.zeros((1, k, 1, 1)))
        + w_tensor(mean.reshape(1, k, 1, 1))
        + w_tensor(var.reshape(1, k, 1, 1))
        + w_int(100)
        + w_int(1000)
        + b"".join(w_float(v) for v in (1, 1, 1, 0))
        + w_float(eps)
    )
    layer = df.read_layer_details(df.Reader(stream))
    assert layer.kind == "affine" and layer.attrs["from_bn"]
    g = gamma / np.sqrt(var + np.float32(eps))
    np.testing.assert_allclose(layer.tensors["gamma"].reshape(-1), g, rtol=1e-6)
    np.testing.assert_allclose(layer.tensors["beta"].reshape(-1), beta - g * mean, rtol=1e-5, atol=1e-6)


def test_fc_no_bias_and_affine_disabled() -> None:
    w = np.arange(6, dtype=np.float32).reshape(3, 2)  # (num_inputs, num_outputs)
    fc = (
        w_str("fc_2")
        + w_int(2)
        + w_int(3)
        + w_tensor(w.reshape(1, -1, 1, 1))
        + w_alias(3, 2, 1, 1)
        + w_alias(1, 2, 1, 1)
        + w_int(1)
        + b"".join(w_float(v) for v in (1, 1, 1, 0))
    )
    layer = df.read_layer_details(df.Reader(fc))
    np.testing.assert_array_equal(layer.tensors["weights"], w)
    assert "biases" not in layer.tensors
    aff = (
        w_str("affine_2")
        + w_tensor(np.zeros((0, 0, 0, 0)))
        + w_alias(1, 2, 1, 1)
        + w_alias(1, 2, 1, 1)
        + w_int(0)
        + w_bool(True)
    )
    assert df.read_layer_details(df.Reader(aff)).attrs["disabled"] is True


def test_unknown_or_unexpected_layer() -> None:
    with pytest.raises(df.DlibFormatError, match="unsupported"):
        df.read_layer_details(df.Reader(w_str("mish_")))
    with pytest.raises(df.DlibFormatError, match="expected layer"):
        df.read_layer_details(df.Reader(w_str("relu_")), ("con_5",))


# --- network nesting ---------------------------------------------------------------------


def _mini_net(trailing: bytes = b"") -> tuple[bytes, np.ndarray, np.ndarray]:
    """loss_metric<relu<add_prev1<con<tag1<con<input_rgb_image_sized<4>>>>>>>"""
    rng = np.random.default_rng(4)
    f1, b1 = rng.normal(size=(2, 3, 3, 3)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    f2, b2 = rng.normal(size=(2, 2, 3, 3)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    out = w_int(1) + w_str("loss_metric_2") + w_float(0.04) + w_float(0.6)
    # versions top-down: relu (2), add_prev (2), con (2), tag (1), con over input (3)
    out += w_int(2) + w_int(2) + w_int(2) + w_int(1) + w_int(3)
    out += w_str("input_rgb_image_sized") + w_float(122.782) + w_float(117.001) + w_float(104.298) + w_int(4) + w_int(4)
    out += w_con(f1, b1, 1, 1) + w_layer_tail(True, 3)  # con over input
    out += w_con(f2, b2, 1, 1) + w_layer_tail(False, 2)  # con over tag1
    out += w_str("add_prev_") + w_layer_tail(False, 2)
    out += w_str("relu_") + w_layer_tail(False, 2)
    return out + trailing, f1, f2


SPEC = [
    df.Node("layer", ("relu_",)),
    df.Node("layer", ("add_prev_",), n=1),
    df.Node("layer", ("con_5",)),
    df.Node("tag", n=1),
    df.Node("layer", ("con_5",)),
    df.Node("input", ("input_rgb_image_sized",)),
]


def test_parse_network_nesting() -> None:
    data, f1, f2 = _mini_net()
    loss, nodes = df.parse_network(data, SPEC, loss=("loss_metric_2",))
    assert loss is not None and loss.attrs["margin"] == pytest.approx(0.04)
    assert nodes[-1].layer.attrs["nr"] == 4
    assert nodes[-1].layer.attrs["avg_rgb"] == pytest.approx([122.782, 117.001, 104.298], abs=1e-4)
    np.testing.assert_array_equal(nodes[4].layer.tensors["filters"], f1)
    np.testing.assert_array_equal(nodes[2].layer.tensors["filters"], f2)
    assert [n.layer.kind if n.layer else n.op for n in nodes] == ["relu", "add_prev", "con", "tag", "con", "input_rgb"]


def test_parse_network_rejects_bad_streams() -> None:
    data, _, _ = _mini_net(trailing=b"\x00")
    with pytest.raises(df.DlibFormatError, match="trailing"):
        df.parse_network(data, SPEC, loss=("loss_metric_2",))
    data, _, _ = _mini_net()
    with pytest.raises(df.DlibFormatError, match="end of data"):
        df.parse_network(data[:-5], SPEC, loss=("loss_metric_2",))
    wrong = SPEC[:2] + [df.Node("layer", ("relu_",))] + SPEC[3:]  # a con where the spec says relu
    with pytest.raises(df.DlibFormatError, match="expected layer"):
        df.parse_network(data, wrong, loss=("loss_metric_2",))
    with pytest.raises(df.DlibFormatError, match="version"):
        df.parse_network(data, [df.Node("tag", n=1)] + SPEC, loss=("loss_metric_2",))
    with pytest.raises(df.DlibFormatError, match="input"):
        df.parse_network(data, SPEC[:-1], loss=("loss_metric_2",))
    with pytest.raises(df.DlibFormatError, match="loss"):
        df.parse_network(data, SPEC, loss=("loss_mmod_",))


def test_float32_le_helper() -> None:
    assert df.float32_le([1.0, -2.0]) == struct.pack("<2f", 1.0, -2.0)
