"""The face gallery across upgrade and rollback: nothing lost, re-embedded when the feature model
changes, never searched with vectors of another model (issue 6, item 6).

The "new feature model" of the second package differs by its inference.yml bytes (a comment), so
its fingerprint differs while its vectors are the same: after the upgrade every stored face must
carry the new model's fingerprint (re-embedded from the stored crops), the same people must be
recognised, and after the rollback every face must carry the old one again.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_installer_fixtures import (  # noqa: E402,F401
    REPO,
    free_port,
    kill_leftovers,
    new_root,
    post_json,
    shared_runtime,
    source_tree,
    wheelhouse,
)

DEPLOY = "demo-face"
FACES = REPO / "package" / "samples" / "faces"
FACE_BUNDLES = ["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "dlib_resnet_face"]


def bench_upgrade():
    spec = importlib.util.spec_from_file_location("bench_upgrade", REPO / "benchmarks" / "bench_upgrade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def models_in_gallery(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for db in glob.glob(str(root / DEPLOY / "data" / "**" / "*.db"), recursive=True) + glob.glob(
        str(root / DEPLOY / "data" / "**" / "*.sqlite*"), recursive=True
    ):
        if db.endswith(("-wal", "-shm")):
            continue
        with sqlite3.connect(db) as con:
            for model, n in con.execute("SELECT model, COUNT(*) FROM faces GROUP BY model"):
                counts[model] = counts.get(model, 0) + n
    return counts


def recognise(port: int) -> list[str]:
    img = base64.b64encode((FACES / "obama_2.jpg").read_bytes()).decode()
    status, body = post_json(port, "/face-recognition-infer", {"image": img, "visualize": False}, timeout=120)
    assert status == 200, body
    return [r["label"] for f in body["result"]["faces"] for r in f["recResults"]]


def open_to_others(root: Path) -> list[str]:
    """Files of the gallery (faces, crops, vectors) and logs other local users could open (issue 14 item 4)."""
    return [
        f"{p} {p.stat().st_mode & 0o777:o}"
        for sub in ("data", "logs")
        for p in (root / DEPLOY / sub).rglob("*")
        if not p.is_symlink() and p.stat().st_mode & 0o007
    ]


def test_gallery_survives_upgrade_and_rollback_and_follows_the_feature_model(tmp_path, shared_runtime):
    bu = bench_upgrade()
    root = new_root(tmp_path, shared_runtime)
    bu.license_root(root, tmp_path / "vendor")
    port = free_port()
    try:
        proc, _ = bu.installer(REPO, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), "--force")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        seeded = subprocess.run(
            [sys.executable, str(FACES / "seed_gallery.py"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert seeded.returncode == 0, seeded.stdout + seeded.stderr
        assert "Barack_Obama" in recognise(port)
        assert open_to_others(root) == []
        before = models_in_gallery(root)
        assert len(before) == 1 and sum(before.values()) >= 1, before
        (old_model,) = before

        # Package 2: same app, a feature-model bundle whose files differ (yml comment) -> new fingerprint.
        v2 = bu.update_package(tmp_path / "pkg2", "9.0.0", FACE_BUNDLES)
        feat = v2 / "models" / "dlib_resnet_face"
        yml = feat / "inference.yml"
        yml.write_text(yml.read_text() + "\n# feature model revision 2 (test)\n")
        manifest = json.loads((feat / "manifest.json").read_text())
        manifest["files"]["inference.yml"] = hashlib.sha256(yml.read_bytes()).hexdigest()
        (feat / "manifest.json").write_text(json.dumps(manifest, indent=2))

        proc, _ = bu.installer(REPO, root, "upgrade", DEPLOY, "--package", str(v2), "--timeout", "300")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        after = models_in_gallery(root)
        assert sum(after.values()) == sum(before.values()), (before, after)  # nothing lost
        assert old_model not in after and len(after) == 1, after  # every face re-embedded
        assert "Barack_Obama" in recognise(port)

        proc, _ = bu.installer(REPO, root, "rollback", DEPLOY, "--timeout", "300")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        back = models_in_gallery(root)
        assert back == {old_model: sum(before.values())}, back
        assert "Barack_Obama" in recognise(port)
        assert open_to_others(root) == []
    finally:
        bu.installer(REPO, root, "stop", DEPLOY)
        kill_leftovers(root)
