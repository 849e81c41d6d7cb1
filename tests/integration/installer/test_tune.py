"""installer/tune.py for real: each backend measured in its own child process of a runtime venv (the dev
venv here), on real bundles; a backend whose ONNX rendition does not load, or whose answers differ
from Paddle's record, is never chosen, and the log says why."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from tests.paths import PACKAGE, REPO
from visionpack import config
from visionpack.installer import tune

VENV = Path(sys.executable).parent.parent
SOURCE = REPO / "models" / "mtcnn_onet"  # small and quick on every backend
KEEP = ("inference.json", "inference.pdiparams", "inference.yml", "parity.npz")


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


def bundle(tmp: Path, name: str, onnx: str) -> str:
    dest = tmp / name
    dest.mkdir()
    for f in KEEP:
        shutil.copy2(SOURCE / f, dest / f)
    rendition = dest / "inference.onnx"
    shutil.copy2(SOURCE / "inference.onnx", rendition)
    if onnx == "disagrees":
        perturb_onnx(rendition)
    elif onnx == "broken":
        rendition.write_bytes(rendition.read_bytes()[: rendition.stat().st_size // 3])
    return str(dest)


def test_a_backend_that_fails_or_disagrees_is_never_chosen_and_the_log_says_why(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    (release / "package").symlink_to(PACKAGE)
    models = {
        "good": bundle(tmp_path, "good", "same"),
        "disagrees": bundle(tmp_path, "disagrees", "disagrees"),
        "broken": bundle(tmp_path, "broken", "broken"),
    }
    cfg = config.from_mapping({"service": "face", "threads_per_worker": 1, "models": models})
    (release / "config.yml").write_text(config.dump(cfg))
    said: list[str] = []

    new = tune.tune_release(VENV, release, cfg, said.append)

    log = "\n".join(said)
    chosen = {role: rec["backend"] for role, rec in new.tuning.items()}
    assert chosen["disagrees"] == "paddle" and chosen["broken"] == "paddle", log
    assert chosen["good"] in ("paddle", "onnxruntime", "openvino"), log
    for kind in ("onnxruntime", "openvino"):
        assert new.tuning["good"]["candidates"][kind]["ok"], log
        assert new.tuning["disagrees"]["candidates"][kind]["why"].startswith("disagrees with Paddle"), log
        assert "does not load or run" in new.tuning["broken"]["candidates"][kind]["why"], log
        assert f"  {kind}: not chosen: disagrees with Paddle: max abs diff" in log
    # written into the release, where the engine factory reads it
    assert config.load(release / "config.yml", env={}).tuning == new.tuning
    good = new.tuning["good"]["candidates"][chosen["good"]]
    assert good["p50_ms"] > 0 and good["runs"] >= 10


def test_a_runtime_that_dies_is_an_answer_for_that_backend_only(tmp_path):
    release = tmp_path / "release"
    (release / "package" / "visionpack").mkdir(parents=True)  # a release whose code cannot even import
    (release / "config.yml").write_text("models: {}\n")
    result = tune.measure_backend(VENV, release, "openvino")
    assert result["why"].startswith("its process failed (exit 1)")


def test_the_perturbed_rendition_loads_and_answers_otherwise(tmp_path):
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    shutil.copy2(SOURCE / "inference.onnx", path)
    perturb_onnx(path)
    assert path.stat().st_size == (SOURCE / "inference.onnx").stat().st_size
    with np.load(SOURCE / "parity.npz") as npz:
        feeds = {k.split(":", 1)[1]: npz[k] for k in npz.files if k.startswith("input:")}
        want = npz["output:0"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got.shape == want.shape and np.abs(got - want).max() > 1e-3
