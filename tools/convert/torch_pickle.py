"""Read a PyTorch checkpoint into numpy arrays without torch and without running arbitrary pickle code.

Two on-disk formats written by ``torch.save`` are understood:

* zip (torch >= 1.6 default): ``<prefix>/data.pkl`` holds the object graph; each storage is the
  raw little-endian bytes of ``<prefix>/data/<key>``; ``<prefix>/byteorder`` says the byte order
  (absent in old files = little).
* legacy (``_use_new_zipfile_serialization=False`` and files written before 1.6, e.g.
  facenet-pytorch's MTCNN ``pnet.pt``): five consecutive pickles -- magic number, protocol
  version, sys_info, the object graph, the list of storage keys -- then for every key, in that
  order, an int64 element count followed by the raw bytes.

In both, the object graph references storages through pickle *persistent ids*
(``('storage', storage_type, key, location, numel[, view_metadata])``) and tensors are rebuilt by
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``. The unpickler resolves
only an allow-list of globals to inert stand-ins, so a checkpoint that names anything else
(``os.system``, a pickled ``nn.Module`` class, ...) is refused before any of it runs.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Union

import numpy as np

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "load",
    "load_state_dict",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_LEGACY_PROTOCOL = 1001  # torch/serialization.py PROTOCOL_VERSION


class CheckpointError(ValueError):
    """The file is not a checkpoint this reader understands (corrupt, truncated, exotic)."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle names a global outside the allow-list; nothing of it was executed."""


# storage class name -> numpy dtype. bfloat16 has no numpy dtype: read as uint16, widened later.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "ComplexFloatStorage": np.dtype("<c8"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    "UntypedStorage": np.dtype("u1"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only its dtype matters."""

    name: str
    dtype: np.dtype
    bfloat16: bool = False


class _Storage:
    """One storage's bytes as a flat array; legacy files fill ``data`` after the object graph."""

    def __init__(self, stype: _StorageType, numel: int) -> None:
        self.stype = stype
        self.numel = numel
        self.data: np.ndarray | None = None
        # legacy view storages: (root storage, element offset); resolved when materialising
        self.view_of: tuple[_Storage, int] | None = None

    def array(self) -> np.ndarray:
        if self.view_of is not None:
            root, offset = self.view_of
            flat = root.array()
            if offset < 0 or offset + self.numel > flat.size:
                raise CheckpointError("storage view lies outside its root storage")
            return flat[offset : offset + self.numel]
        if self.data is None:
            raise CheckpointError("storage referenced by the pickle has no data in the file")
        return self.data


@dataclass(frozen=True)
class _DType:
    """Stand-in for a ``torch.<dtype>`` object (pickled by ``_rebuild_tensor_v3``)."""

    name: str
    dtype: np.dtype | None  # None: no numpy equivalent (float8, complex32, ...)
    bfloat16: bool = False


@dataclass
class _LazyTensor:
    """What ``_rebuild_tensor_v2/v3`` return; becomes an ndarray once every storage is read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: _DType | None = None  # v3: the storage is untyped bytes to reinterpret

    def materialise(self) -> np.ndarray:
        flat = self.storage.array()
        bfloat16 = self.storage.stype.bfloat16
        if self.dtype is not None:
            if self.dtype.dtype is None:
                raise CheckpointError(f"tensor dtype torch.{self.dtype.name} has no numpy equivalent")
            dt = self.dtype.dtype
            if flat.dtype.byteorder == ">" and dt.itemsize > 1:
                dt = dt.newbyteorder(">")
            usable = flat.nbytes - flat.nbytes % dt.itemsize
            flat = flat.view(np.uint8)[:usable].view(dt)
            bfloat16 = self.dtype.bfloat16
        size, stride, offset = self.size, self.stride, self.offset
        if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise CheckpointError(f"bad tensor geometry size={size} stride={stride}")
        count = int(np.prod(size, dtype=np.int64)) if size else 1
        if count == 0:
            out = np.zeros(size, dtype=flat.dtype)
        else:
            # as_strided reads raw memory: bound the furthest element first (a hostile file
            # could otherwise point outside the storage).
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if offset < 0 or last >= flat.size:
                raise CheckpointError(
                    f"tensor (offset {offset}, size {size}, stride {stride})"
                    f" exceeds its storage of {flat.size} elements"
                )
            item = flat.dtype.itemsize
            view = np.lib.stride_tricks.as_strided(
                flat[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
            )
            out = np.array(view, copy=True, order="C")  # own, contiguous memory; shared storages stay independent
        if bfloat16:
            out = (out.astype(np.uint32) << 16).view(np.float32)
        elif out.dtype.byteorder == ">" or (out.dtype.byteorder == "=" and not _NATIVE_LITTLE):
            out = out.astype(out.dtype.newbyteorder("="))
        return out


_NATIVE_LITTLE = np.little_endian


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    if not isinstance(storage, _Storage):
        raise CheckpointError("_rebuild_tensor_v2 called without a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(int(v) for v in size), tuple(int(v) for v in stride))


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: int,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    dtype: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    # torch >= 2.3 writes dtypes without a typed storage class (uint16/32/64, float8...) this way
    if not isinstance(dtype, _DType):
        raise CheckpointError("_rebuild_tensor_v3 called without a dtype")
    t = _rebuild_tensor_v2(storage, storage_offset, size, stride)
    t.dtype = dtype
    return t


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any) -> _LazyTensor:
    # pre-1.0 checkpoints (torch 0.4) use the v1 signature
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None) -> Any:
    # an nn.Parameter is just its tensor for our purposes
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    # the builtins pickle itself needs for plain containers and numbers
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("__builtin__", "set"): set,  # protocol-2 files written by Python 2
}
_TORCH_DTYPES: dict[str, np.dtype | None] = {
    "float32": np.dtype("<f4"),
    "float": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "double": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "half": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
    "long": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "short": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "bool": np.dtype("?"),
    "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "complex32": None,
    "float8_e4m3fn": None,
    "float8_e5m2": None,
    "float8_e4m3fnuz": None,
    "float8_e5m2fnuz": None,
    "float8_e8m0fnu": None,
}
_ALLOWED[("torch._utils", "_rebuild_tensor_v3")] = _rebuild_tensor_v3
for _name, _np in _TORCH_DTYPES.items():
    _ALLOWED[("torch", _name)] = _DType(_name, _np, _name == "bfloat16")
for _name, _dt in _STORAGE_DTYPES.items():
    _ALLOWED[("torch", _name)] = _StorageType(_name, _dt, _name == "BFloat16Storage")
    _ALLOWED[("torch.storage", _name)] = _ALLOWED[("torch", _name)]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], persistent: Callable[[Any], Any] | None) -> None:
        super().__init__(file, encoding="latin1")  # latin1: Python-2-era byte strings stay lossless
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f"checkpoint references {module}.{name}, which is not on the allow-list of a plain "
                "tensor state dict; refusing to load it (it could run arbitrary code)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointError("unexpected persistent id in a checkpoint header pickle")
        return self._persistent(pid)


def _decode(v: Any) -> Any:
    return v.decode("ascii") if isinstance(v, bytes) else v


def _storage_pid(pid: Any, storages: dict[str, _Storage]) -> tuple[_Storage, Any]:
    """Parse ('storage', type, key, location, numel[, view]) and return the (root) storage."""
    if not isinstance(pid, tuple) or not pid or _decode(pid[0]) != "storage" or len(pid) < 5:
        raise CheckpointError(f"unsupported persistent id {pid!r:.80}")
    stype, key, numel = pid[1], str(_decode(pid[2])), pid[4]
    if not isinstance(stype, _StorageType):
        raise CheckpointError(f"persistent id names an unknown storage type {stype!r:.60}")
    if not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"bad storage size {numel!r:.40}")
    st = storages.get(key)
    if st is None:
        st = storages[key] = _Storage(stype, numel)
    return st, (pid[5] if len(pid) > 5 else None)


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialise()
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v) for v in obj)
    return obj


def _load_zip(zf: zipfile.ZipFile) -> Any:
    pkl_names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl_names) != 1:
        raise CheckpointError(f"zip checkpoint must hold exactly one data.pkl, found {len(pkl_names)}")
    prefix = pkl_names[0][: -len("data.pkl")]
    big = False
    if prefix + "byteorder" in zf.namelist():
        big = zf.read(prefix + "byteorder").strip() == b"big"
    storages: dict[str, _Storage] = {}

    def persistent(pid: Any) -> Any:
        st, _ = _storage_pid(pid, storages)
        if st.data is None:
            name = f"{prefix}data/{_decode(pid[2])}"
            try:
                raw = zf.read(name)
            except KeyError as exc:
                raise CheckpointError(f"storage record {name} missing from the archive") from exc
            dt = st.stype.dtype.newbyteorder(">") if big and st.stype.dtype.itemsize > 1 else st.stype.dtype
            if len(raw) < st.numel * dt.itemsize:
                raise CheckpointError(f"storage record {name} is shorter than its declared size")
            st.data = np.frombuffer(raw, dtype=dt, count=st.numel)
        return st

    with zf.open(pkl_names[0]) as fh:
        graph = _RestrictedUnpickler(io.BytesIO(fh.read()), persistent).load()
    return _materialise(graph)


def _load_legacy(f: IO[bytes]) -> Any:
    def header() -> Any:
        try:
            return _RestrictedUnpickler(f, None).load()
        except CheckpointError:
            raise
        except Exception as exc:  # truncated / not a pickle at all
            raise CheckpointError(f"not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc

    if header() != _LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (legacy magic number missing)")
    if header() != _LEGACY_PROTOCOL:
        raise CheckpointError("unsupported legacy checkpoint protocol version")
    sys_info = header()
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise CheckpointError("big-endian legacy checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    views: dict[str, _Storage] = {}

    def persistent(pid: Any) -> Any:
        root, view = _storage_pid(pid, storages)
        if view is None:
            return root
        # legacy storage views: (view_key, element offset, element count) into the root storage
        view_key, offset, view_size = str(_decode(view[0])), int(view[1]), int(view[2])
        if view_key not in views:
            v = _Storage(root.stype, view_size)
            v.view_of = (root, offset)
            views[view_key] = v
        return views[view_key]

    graph = _RestrictedUnpickler(f, persistent).load()
    keys = header()
    if not isinstance(keys, list):
        raise CheckpointError("legacy checkpoint lacks its storage key list")
    for key in keys:
        st = storages.get(str(_decode(key)))
        if st is None:
            raise CheckpointError(f"storage {key!r} listed but never referenced")
        head = f.read(8)
        if len(head) != 8:
            raise CheckpointError("legacy checkpoint truncated in its storage data")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise CheckpointError(f"storage {key!r} size {numel} differs from its declaration {st.numel}")
        nbytes = numel * st.stype.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError("legacy checkpoint truncated in its storage data")
        st.data = np.frombuffer(raw, dtype=st.stype.dtype)
    return _materialise(graph)


PathOrFile = Union[str, "os.PathLike[str]", IO[bytes], bytes]


def load(source: PathOrFile) -> Any:
    """Load a whole checkpoint; tensors come back as numpy arrays (bfloat16 widened to float32)."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            data = fh.read()
    else:
        data = source.read()
    buf = io.BytesIO(data)
    if data[:4] == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(buf)
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"corrupt zip checkpoint: {exc}") from exc
        with zf:
            return _load_zip(zf)
    return _load_legacy(buf)


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params")


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def load_state_dict(source: PathOrFile) -> dict[str, np.ndarray]:
    """Load a checkpoint holding a state dict (possibly wrapped as ``{'state_dict': ...}``)."""
    obj = load(source)
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for k in _WRAPPER_KEYS:
            if _is_tensor_dict(obj.get(k)):
                return dict(obj[k])
    raise CheckpointError(f"checkpoint does not hold a flat name->tensor state dict (got {type(obj).__name__})")
