"""The gallery builder with the real demo bundles, as an operator runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "detector_pnet": "mtcnn_pnet",
    "detector_rnet": "mtcnn_rnet",
    "detector_onet": "mtcnn_onet",
    "feature": "dlib_resnet_face",
}


def test_build_the_sample_gallery_then_export_and_list(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "deploy": "demo-face",
                "service": "face",
                "data_dir": str(tmp_path / "data"),
                "models": {r: str(REPO / "models" / b) for r, b in MODELS.items()},
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "package"), "GLOG_minloglevel": "2"}
    cli = [sys.executable, "-m", "visionpack.gallery", "--config", str(config)]
    done = subprocess.run(
        cli + ["build", str(REPO / "package/samples/faces"), "--index", "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"index": "demo", "added": 4, "skipped": 0, "whole_image_no_face": 0}
    assert "[4/4] 100%" in done.stderr
    listing = subprocess.run(cli + ["list", "--index", "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert listing.stdout.split() == ["0", "Eileen_Collins", "1", "Joe_Biden", "2", "Barack_Obama", "3", "Barack_Obama"]
    backup = tmp_path / "backup.sqlite3"
    exported = subprocess.run(cli + ["export", str(backup)], capture_output=True, text=True, env=env, timeout=120)
    assert exported.returncode == 0 and backup.stat().st_size > 0
    restored = subprocess.run(
        [sys.executable, "-m", "visionpack.gallery", "--data-dir", str(tmp_path / "other"), "import", str(backup)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert json.loads(restored.stdout) == {"imported": {"default": 0, "demo": 4}}
