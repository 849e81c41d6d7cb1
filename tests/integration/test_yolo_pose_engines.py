"""A YOLOv8-pose export stand-in (hand-built ONNX with Ultralytics' metadata, tests/yolo_onnx.py) served through
the real engine factory on ONNX Runtime and OpenVINO: both keypoint dialects answer identically, a batch
dimension batches, and what the export's graph cannot serve stops the service at start."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.fakes import jpeg_b64
from tests.yolo_onnx import metadata, pose_table, write_onnx
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import ModelInvalid
from visionpack.inference.engine import create_engine
from visionpack.services.pose import build_pipeline
from visionpack.services.pose.pipeline import Options

DEPLOY = "yolo-pose"
KPTS = [30.0, 30.0, 0.8] * 17
TABLE = pose_table(
    [[32, 32, 20, 40, 0.9, *KPTS], [33, 32, 20, 40, 0.85, *KPTS], [10, 10, 8, 8, 0.5, *[10.0, 10.0, 0.5] * 17]], 84
)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_onnx(tmp_path_factory.mktemp("yolo") / "yolov8n-pose.onnx", TABLE, metadata(), batch="batch").parent


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_export_is_served_unchanged_on_each_onnx_backend(export, backend):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(export)}, backend=backend)
    client = create_app(cfg, gate=None).test_client()
    body = {"image": jpeg_b64(64, 128), "visualize": False}
    persons = client.post("/human-keypoint-detection", json=body).get_json()["result"]["persons"]
    assert [p["bbox"] for p in persons] == [[44, 0, 84, 64], [12, 0, 28, 0]]
    assert persons[0]["kpts"][16] == pytest.approx([60, 28, 0.8])
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": jpeg_b64(64, 128)}).get_json()
    assert easy["person_num"] == 2


def test_a_batch_of_queued_images_runs_as_one_on_onnx_runtime(export):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(export)}, max_batch=4)
    p = build_pipeline(cfg, Options(), create_engine)
    p.warmup()
    assert p.batcher.max_batch == 4
    x = np.zeros((3, 64, 64), np.float32)
    outs = p._run_batch([x, x, x])
    assert len(outs) == 3 and all(np.array_equal(o, TABLE) for o in outs)


def test_a_fixed_batch_of_one_is_served_one_at_a_time(tmp_path):
    d = write_onnx(tmp_path / "m" / "yolov8n-pose.onnx", TABLE, metadata(), batch=1).parent
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(d)})
    p = build_pipeline(cfg, Options(), create_engine)
    p.warmup()
    assert p.batcher.max_batch == 1
    assert len(p.predict(np.zeros((64, 64, 3), np.uint8), 0.1)) == 2


def test_a_detection_export_stops_the_service_at_start(tmp_path):
    d = write_onnx(tmp_path / "m" / "yolov8n.onnx", pose_table([], 84, (0, 3)), metadata(task="detect")).parent
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(d)})
    with pytest.raises(ModelInvalid, match=r"an Ultralytics 'detect' export; the keypoint service serves pose exports"):
        create_app(cfg, gate=None)
