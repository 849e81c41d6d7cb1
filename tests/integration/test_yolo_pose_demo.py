"""The committed demo YOLOv8-pose deploy (models/yolov8n_pose_synthetic, catalog deploy demo-pose-yolo):
Ultralytics' own ONNX and Paddle exports of the model tools/train_pose/train_yolo.py trained on our
synthetic figures, served through the keypoint service unchanged.

Both exports load and find the figures of a fresh synthetic scene (a seed neither training, 1 and 3,
nor the reported evaluation, 2, used) through the real app; the ONNX one is what the deploy serves,
the Paddle one must answer the same persons. The manifest records how the model was made and measured
(docs/pose-models.md, "YOLOv8-pose demo").
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.download import catalog  # noqa: E402
from tools.train_pose import scenes  # noqa: E402
from tools.train_pose.data import scene_seed  # noqa: E402
from tools.train_pose.evaluate import box_iou  # noqa: E402
from visionpack.api.app import create_app  # noqa: E402
from visionpack.bundle import sha256_file  # noqa: E402
from visionpack.config import ServiceConfig  # noqa: E402
from visionpack.services.pose.yolo_export import load_export  # noqa: E402

NAME = "yolov8n_pose_synthetic"
EXPORT = ROOT / "models" / NAME
DEPLOY = "demo-pose-yolo"
FRESH_SEED = 4  # the top-down detector's calibration scenes: neither this model's training nor the test set
SCENES = 6
# Floors well below what the model measures (docs/pose-models.md): they catch a broken export or pipeline.
MIN_FOUND = 0.75  # share of the figures with a served box of IoU >= 0.5 (13 of 13 measured)


def b64(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


def client_for(export: Path, backend: str):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(export)}, backend=backend)
    return create_app(cfg, gate=None).test_client()


@pytest.fixture(scope="module")
def paddle_only(tmp_path_factory) -> Path:
    """The Paddle export alone (the directory holds both; with both the ONNX one is served)."""
    d = tmp_path_factory.mktemp("paddle-only")
    (src,) = EXPORT.glob("*_paddle_model")
    shutil.copytree(src, d / src.name)
    return d


def served(client) -> tuple[int, int, list[list[list[float]]]]:
    """Figures found (IoU >= 0.5) and figures in all, over SCENES fresh scenes, and every answer's boxes."""
    found = total = 0
    answers = []
    for i in range(SCENES):
        img, persons = scenes.generate_scene(scene_seed(FRESH_SEED, i))
        body = client.post("/human-keypoint-detection", json={"image": b64(img), "visualize": False}).get_json()
        assert body["errorCode"] == 0, body
        boxes = [p["bbox"] for p in body["result"]["persons"]]
        answers.append(boxes)
        for p in body["result"]["persons"]:
            assert len(p["kpts"]) == 17 and all(len(k) == 3 for k in p["kpts"])
        gt = np.array([p.bbox for p in persons], np.float32).reshape(-1, 4)
        total += len(gt)
        if boxes and len(gt):
            found += int((box_iou(gt, np.array(boxes, np.float32)).max(1) >= 0.5).sum())
    return found, total, answers


def test_the_catalog_serves_the_onnx_export_as_the_demo_deploy():
    data = yaml.safe_load((ROOT / "package" / "catalog.yml").read_text())
    entry = data["deploys"][DEPLOY]
    assert entry["service"] == "keypoint" and entry["models"] == {"pose": NAME}
    assert NAME in catalog.bundle_names(ROOT / "package" / "catalog.yml")
    b = load_export(EXPORT)
    assert b.onnx is not None and b.paddle is not None
    assert b.manifest["engine"] == "onnxruntime"  # both present: ONNX unless the deploy says paddle
    assert b.meta["task"] == "pose" and list(b.meta["kpt_shape"]) == [17, 3]


def test_manifest_records_data_recipe_versions_metrics_and_checksums():
    m = json.loads((EXPORT / "manifest.json").read_text())
    src = m["source"]
    assert src["data"]["generator_version"] == scenes.GENERATOR_VERSION
    splits = src["data"]["splits"]
    assert splits["train"]["base_seed"] not in (2,) and splits["val"]["base_seed"] != 2  # 2: the test set
    assert src["data"]["images"]["train"] > 0
    for key in ("train_seed", "epochs_run", "imgsz", "hyper_parameters", "train_wall_seconds"):
        assert src[key] is not None, key
    for key in ("ultralytics", "torch", "paddle"):
        assert m["export"][key], key
    onnx = m["metrics"]["onnxruntime"]
    assert onnx["test_set"]["base_seed"] == 2 and onnx["test_set"]["scenes"] == 300
    assert 0 < onnx["person_AP50"] <= 1 and 0 < onnx["keypoint_AP"] <= 1
    files = m["files"]
    assert any(f.endswith(".onnx") for f in files) and any("_paddle_model/" in f for f in files)
    for rel, digest in files.items():
        assert sha256_file(EXPORT / rel) == digest, rel
    on_disk = {p.relative_to(EXPORT).as_posix() for p in EXPORT.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(files)


def test_the_onnx_export_finds_the_figures_of_fresh_scenes():
    client = client_for(EXPORT, "onnxruntime")
    found, total, _ = served(client)
    assert found >= MIN_FOUND * total, (found, total)
    with (ROOT / "package" / "samples" / "pose" / "figures.jpg").open("rb") as f:
        image = base64.b64encode(f.read()).decode()
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": image}).get_json()
    assert easy["person_num"] >= 1, easy
    ours = client.post(f"/{DEPLOY}/predict", json={"image": image}).get_json()
    assert ours["results"] and ours["results"][0]["name"] == "person"


@pytest.mark.parametrize("where", ["beside the onnx file", "alone"])
def test_the_paddle_export_loads_and_answers_as_the_onnx_one(paddle_only, where):
    """`backend: paddle` on the deploy's directory (which also holds the ONNX file: Paddle once crashed
    reading that as its program), and the Paddle folder alone."""
    onnx = served(client_for(EXPORT, "onnxruntime"))
    paddle = served(client_for(EXPORT if where == "beside the onnx file" else paddle_only, "paddle"))
    assert paddle[:2] == onnx[:2]
    for a, b in zip(onnx[2], paddle[2]):
        assert len(a) == len(b)
        if a:
            assert np.abs(np.array(a) - np.array(b)).max() <= 1.0
