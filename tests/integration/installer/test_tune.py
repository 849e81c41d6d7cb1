"""installer/tune.py for real: each backend measured in its own child process of a runtime venv (the dev
venv here), on real bundles; a backend whose ONNX rendition does not load, or whose answers differ
from Paddle's record, is never chosen, and the log says why."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from tests.onnx_edit import perturb_onnx
from tests.paths import PACKAGE, REPO
from visionpack import config
from visionpack.installer import tune

VENV = Path(sys.executable).parent.parent
SOURCE = REPO / "models" / "mtcnn_onet"  # small and quick on every backend
KEEP = ("inference.json", "inference.pdiparams", "inference.yml", "parity.npz")


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
