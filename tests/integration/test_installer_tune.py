"""backend: auto through the installer: install measures and writes the choice into its release, an upgrade
measures its own release and leaves the old one's alone, a rollback returns to the old choice, and
``install.py tune`` reproduces the measurement (real runtimes in the shared runtime venv; the stand-in
app serves, so no worker loads a model here: tests/integration/test_backends_serving.py does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    REPO,
    make_source_tree,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    trial_license,
    wheelhouse,
)

from tests.onnx_edit import perturb_onnx

MODEL = REPO / "models" / "mtcnn_rnet"  # quick on every backend


def tree(base: Path, wheelhouse: Path, version: str, *, disagreeing: bool) -> Path:
    """A package whose deploy's model is a real bundle with an ONNX rendition and parity record;
    ``disagreeing``: its rendition answers otherwise (manifest sums updated: a vendor's own build)."""
    src = make_source_tree(base, wheelhouse, params_bytes=4096)
    (src / "package" / "VERSION").write_text(version + "\n")
    bundle = src / "models" / "tiny_bundle"
    shutil.rmtree(bundle)
    shutil.copytree(MODEL, bundle)
    if disagreeing:
        perturb_onnx(bundle / "inference.onnx")
        import hashlib

        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["files"]["inference.onnx"] = hashlib.sha256((bundle / "inference.onnx").read_bytes()).hexdigest()
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return src


def tuning_of(root: Path, version: str) -> dict:
    return yaml.safe_load((root / DEPLOY / "releases" / version / "config.yml").read_text()).get("tuning") or {}


def test_each_release_keeps_its_own_measured_choice_through_upgrade_and_rollback(tmp_path, wheelhouse, root):
    v1 = tree(tmp_path / "v1", wheelhouse, "1.0.0", disagreeing=False)
    v2 = tree(tmp_path / "v2", wheelhouse, "1.1.0", disagreeing=True)

    inst = run_installer(v1, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", "18791")
    assert inst.returncode == 0, inst.stdout + inst.stderr
    first = tuning_of(root, "1.0.0")["classifier"]
    assert first["backend"] in ("paddle", "onnxruntime", "openvino") and "tune classifier: " in inst.stdout
    assert all(c["ok"] for c in first["candidates"].values()), first
    v1_config = (root / DEPLOY / "releases" / "1.0.0" / "config.yml").read_bytes()

    up = run_installer(v1, root, "upgrade", DEPLOY, "--package", str(v2))
    assert up.returncode == 0, up.stdout + up.stderr
    second = tuning_of(root, "1.1.0")["classifier"]
    assert second["backend"] == "paddle", second  # the others disagree with Paddle's record
    assert "  onnxruntime: not chosen: disagrees with Paddle" in up.stdout
    assert (root / DEPLOY / "releases" / "1.0.0" / "config.yml").read_bytes() == v1_config  # untouched
    shown = status_json(v1, root)["backends"]["classifier"]
    assert (shown["backend"], shown["how"]) == ("paddle", "measured")

    back = run_installer(v1, root, "rollback", DEPLOY)
    assert back.returncode == 0, back.stdout + back.stderr
    assert status_json(v1, root)["backends"]["classifier"]["backend"] == first["backend"]
    assert (root / DEPLOY / "releases" / "1.0.0" / "config.yml").read_bytes() == v1_config

    again = run_installer(v1, root, "tune", DEPLOY, "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert doc["release"] == "1.0.0" and doc["recorded"] == {"classifier": first["backend"]} and not doc["written"]
    assert all(c["ok"] for c in doc["measured"]["classifier"]["candidates"].values())
    assert (root / DEPLOY / "releases" / "1.0.0" / "config.yml").read_bytes() == v1_config  # read-only
    # --write measures again: on a loaded machine two close backends may swap places between two
    # measurements, so what is written is checked against --write's own measurement, not --json's.
    written = run_installer(v1, root, "tune", DEPLOY, "--write", "--json")  # stopped: allowed
    assert written.returncode == 0 and "written into" in written.stderr, written.stdout + written.stderr
    wrote = json.loads(written.stdout)
    assert wrote["written"] and all(c["ok"] for c in wrote["measured"]["classifier"]["candidates"].values())
    assert tuning_of(root, "1.0.0")["classifier"]["backend"] == wrote["measured"]["classifier"]["backend"]
