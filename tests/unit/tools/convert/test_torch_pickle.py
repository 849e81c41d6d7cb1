"""tools/convert/torch_pickle.py against checkpoints written by real torch (both formats)."""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import torch_pickle as tp  # noqa: E402

FORMATS = [pytest.param(True, id="zip"), pytest.param(False, id="legacy")]


def _save(obj: object, path: Path, zip_format: bool) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", FORMATS)
def test_dtypes_round_trip(tmp_path: Path, zip_format: bool) -> None:
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict(
        f32=torch.randn(3, 4, generator=g),
        f64=torch.randn(5, generator=g, dtype=torch.float64),
        f16=torch.randn(2, 3, generator=g).half(),
        i64=torch.arange(-5, 7, dtype=torch.int64).reshape(3, 4),
        i32=torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
        i16=torch.tensor([-3, 4], dtype=torch.int16),
        i8=torch.tensor([-128, 127], dtype=torch.int8),
        u8=torch.tensor([0, 255], dtype=torch.uint8),
        b=torch.tensor([True, False, True]),
        scalar=torch.tensor(3.5),
        empty=torch.zeros(0, 4),
        c64=torch.tensor([1 + 2j, -3j], dtype=torch.complex64),
    )
    got = tp.load_state_dict(_save(sd, tmp_path / "m.pt", zip_format))
    assert list(got) == list(sd)
    for k, t in sd.items():
        want = t.numpy()
        assert got[k].dtype == want.dtype, k
        assert got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k], want)


@pytest.mark.parametrize("zip_format", FORMATS)
def test_bfloat16_widened_to_float32(tmp_path: Path, zip_format: bool) -> None:
    t = torch.tensor([1.5, -2.25, 3e38, 1e-3]).bfloat16()
    got = tp.load_state_dict(_save({"w": t}, tmp_path / "m.pt", zip_format))["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, t.float().numpy())


@pytest.mark.parametrize("zip_format", FORMATS)
def test_strided_views_and_offsets(tmp_path: Path, zip_format: bool) -> None:
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    sd = {
        "transposed": base.transpose(0, 2),  # non-contiguous strides
        "sliced": base[1:, ::2, 1:4],  # storage offset + step
        "row": base[2, 3],  # offset into a shared storage
        "expanded": torch.tensor([1.0, 2.0]).expand(3, 2),  # zero stride
    }
    assert not sd["transposed"].is_contiguous()
    got = tp.load_state_dict(_save(sd, tmp_path / "m.pt", zip_format))
    for k, t in sd.items():
        np.testing.assert_array_equal(got[k], t.numpy(), err_msg=k)
        assert got[k].flags.c_contiguous and got[k].flags.owndata


@pytest.mark.parametrize("zip_format", FORMATS)
def test_shared_storage_gives_independent_arrays(tmp_path: Path, zip_format: bool) -> None:
    w = torch.randn(4, 4)
    sd = {"a": w, "b": w, "half": w[2:], "flat": w.view(-1)}
    got = tp.load_state_dict(_save(sd, tmp_path / "m.pt", zip_format))
    np.testing.assert_array_equal(got["a"], w.numpy())
    np.testing.assert_array_equal(got["half"], w[2:].numpy())
    np.testing.assert_array_equal(got["flat"], w.reshape(-1).numpy())
    got["a"][0, 0] = 1e9  # writable copies that do not alias each other
    assert got["b"][0, 0] == w[0, 0].item()


@pytest.mark.parametrize("zip_format", FORMATS)
def test_module_state_dict_and_wrapped_forms(tmp_path: Path, zip_format: bool) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, 2))
    sd = net.state_dict()
    got = tp.load_state_dict(_save(sd, tmp_path / "sd.pt", zip_format))
    assert list(got) == list(sd)  # order kept, incl. num_batches_tracked
    assert got["1.num_batches_tracked"].dtype == np.int64
    wrapped = tp.load_state_dict(_save({"epoch": 3, "state_dict": sd}, tmp_path / "w.pt", zip_format))
    assert list(wrapped) == list(sd)
    # nn.Parameter objects (keep_vars=True) are accepted too
    params = tp.load_state_dict(_save(net.state_dict(keep_vars=True), tmp_path / "p.pt", zip_format))
    np.testing.assert_array_equal(params["0.weight"], sd["0.weight"].numpy())
    # the generic loader keeps non-tensor values
    whole = tp.load(tmp_path / "w.pt")
    assert whole["epoch"] == 3


def test_file_object_and_bytes_sources(tmp_path: Path) -> None:
    t = {"x": torch.arange(6).reshape(2, 3)}
    buf = io.BytesIO()
    torch.save(t, buf)
    np.testing.assert_array_equal(tp.load_state_dict(io.BytesIO(buf.getvalue()))["x"], t["x"].numpy())
    np.testing.assert_array_equal(tp.load_state_dict(buf.getvalue())["x"], t["x"].numpy())


class _Evil:
    def __reduce__(self):  # noqa: D105
        return (os.system, ("touch /tmp/visionpack_pwned",))


@pytest.mark.parametrize("zip_format", FORMATS)
def test_malicious_pickle_refused(tmp_path: Path, zip_format: bool) -> None:
    marker = Path("/tmp/visionpack_pwned")
    marker.unlink(missing_ok=True)
    path = _save({"w": torch.ones(2), "evil": _Evil()}, tmp_path / "evil.pt", zip_format)
    with pytest.raises(tp.UnsafeCheckpointError, match="system"):
        tp.load_state_dict(path)
    assert not marker.exists()


def test_raw_pickle_with_eval_refused() -> None:
    payload = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(tp.CheckpointError):  # not even the legacy magic: refused as a header
        tp.load(payload)
    # a whole pickled module (class reference) is refused too
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2), buf)
    with pytest.raises(tp.UnsafeCheckpointError, match="torch.nn"):
        tp.load(buf.getvalue())


def test_non_checkpoint_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(tp.CheckpointError):
        tp.load(b"hello world, not a pickle")
    buf = io.BytesIO()
    torch.save({"w": torch.randn(100)}, buf, _use_new_zipfile_serialization=False)
    with pytest.raises(tp.CheckpointError, match="truncated"):
        tp.load(buf.getvalue()[:-50])
    with pytest.raises(tp.CheckpointError, match="state dict"):
        tp.load_state_dict(_save([torch.ones(1)], tmp_path / "list.pt", True))


def test_zip_storage_record_missing_or_short(tmp_path: Path) -> None:
    path = _save({"w": torch.randn(10)}, tmp_path / "m.pt", True)
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    data_name = next(n for n in entries if "/data/" in n and n.rsplit("/", 1)[1].isdigit())

    def rewrite(name: str, content: bytes | None) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for n, b in entries.items():
                if n != name:
                    zf.writestr(n, b)
                elif content is not None:
                    zf.writestr(n, content)
        return out.getvalue()

    with pytest.raises(tp.CheckpointError, match="missing"):
        tp.load(rewrite(data_name, None))
    with pytest.raises(tp.CheckpointError, match="shorter"):
        tp.load(rewrite(data_name, entries[data_name][:8]))


def test_out_of_bounds_geometry_refused() -> None:
    st = tp._Storage(tp._ALLOWED[("torch", "FloatStorage")], 4)
    st.data = np.arange(4, dtype=np.float32)
    with pytest.raises(tp.CheckpointError, match="exceeds"):
        tp._LazyTensor(st, 2, (3,), (1,)).materialise()
    with pytest.raises(tp.CheckpointError, match="geometry"):
        tp._LazyTensor(st, 0, (2,), (-1,)).materialise()


def test_facenet_style_legacy_file_matches_torch(tmp_path: Path) -> None:
    """A PNet-shaped module saved the pre-1.6 way (as facenet-pytorch's pnet.pt is)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 3), torch.nn.PReLU(10), torch.nn.Conv2d(10, 16, 3))
    path = _save(net.state_dict(), tmp_path / "pnet.pt", False)
    assert not zipfile.is_zipfile(path)
    got = tp.load_state_dict(path)
    want = torch.load(path, weights_only=True)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k].numpy())


@pytest.mark.parametrize("zip_format", FORMATS)
def test_unsigned_dtypes_of_rebuild_v3(tmp_path: Path, zip_format: bool) -> None:
    # torch >= 2.3 saves uint16/32/64 through _rebuild_tensor_v3 + an untyped byte storage
    base = torch.arange(24, dtype=torch.int64)
    sd = {
        "u16": base.to(torch.uint16).reshape(4, 6)[:, 1:4],
        "u32": base.to(torch.uint32)[5:],
        "u64": base.to(torch.uint64).reshape(2, 12).t(),
    }
    got = tp.load_state_dict(_save(sd, tmp_path / "u.pt", zip_format))
    for k, t in sd.items():
        assert got[k].dtype == np.dtype(k.replace("u", "uint"))
        np.testing.assert_array_equal(got[k], t.to(torch.int64).numpy())


def test_dtype_without_numpy_equivalent_is_a_clear_error(tmp_path: Path) -> None:
    path = _save({"f8": torch.ones(3).to(torch.float8_e4m3fn)}, tmp_path / "f8.pt", True)
    with pytest.raises(tp.CheckpointError, match="float8_e4m3fn has no numpy equivalent"):
        tp.load(path)


class _Pid:
    def __init__(self, pid: tuple) -> None:
        self.pid = pid


class _Rebuild:
    def __init__(self, fn, args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):  # noqa: D105
        return (self.fn, self.args)


def _handmade_legacy(graph: object, storages: list[tuple[str, np.ndarray]]) -> bytes:
    """A legacy (pre-1.6 layout) checkpoint written field by field, for cases modern torch never emits."""
    import struct

    class P(pickle.Pickler):
        def persistent_id(self, obj):  # noqa: D102
            return obj.pid if isinstance(obj, _Pid) else None

    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump(
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
        buf,
        protocol=2,
    )
    P(buf, protocol=2).dump(graph)
    pickle.dump([k for k, _ in storages], buf, protocol=2)
    for _, arr in storages:
        buf.write(struct.pack("<q", arr.size))
        buf.write(arr.astype("<f4").tobytes())
    return buf.getvalue()


def test_legacy_storage_views_and_v1_rebuild() -> None:
    root = np.arange(10, dtype=np.float32)
    view = _Pid(("storage", torch.FloatStorage, "root", "cpu", 10, ("v1", 4, 3)))  # elements 4..6
    whole = _Pid(("storage", torch.FloatStorage, "root", "cpu", 10, None))
    graph = collections.OrderedDict(
        from_view=_Rebuild(torch._utils._rebuild_tensor_v2, (view, 1, (2,), (1,), False, collections.OrderedDict())),
        v1=_Rebuild(torch._utils._rebuild_tensor, (whole, 2, (2, 2), (1, 3))),
    )
    raw = _handmade_legacy(graph, [("root", root)])
    got = tp.load_state_dict(raw)
    np.testing.assert_array_equal(got["from_view"], [5.0, 6.0])
    np.testing.assert_array_equal(got["v1"], [[2.0, 5.0], [3.0, 6.0]])
    want = torch.load(io.BytesIO(raw), weights_only=False)  # trusted: we just wrote it
    for k in want:
        np.testing.assert_array_equal(got[k], want[k].numpy())
    bad_view = _Pid(("storage", torch.FloatStorage, "root", "cpu", 10, ("v2", 8, 5)))  # runs past the root
    graph = {"w": _Rebuild(torch._utils._rebuild_tensor_v2, (bad_view, 0, (5,), (1,), False, None))}
    with pytest.raises(tp.CheckpointError, match="outside its root"):
        tp.load(_handmade_legacy(graph, [("root", root)]))
