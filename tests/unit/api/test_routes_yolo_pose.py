"""The keypoint routes for a YOLOv8-pose deploy (fake engine answering a hand-built raw output): PaddleX and
EasyDL exactly as for top-down, and ``/<deploy>/predict`` in Ultralytics' Results.to_json() shape with
conf/iou/imgsz/max_det validated like every other field."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.fakes import jpeg_b64
from tests.unit.services.pose.test_yolo_pose import TABLE, TableEngine, app, export_dir
from tests.yolo_onnx import metadata, pose_table
from visionpack.errors import InvalidArgument, ModelInvalid
from visionpack.imaging import ImageLimits
from visionpack.services.pose import ultralytics_json as UJ
from visionpack.services.pose.yolo_pose import Query

DEPLOY = "demo-yolo-pose"
PREDICT = f"/{DEPLOY}/predict"


def crowd(n: int, size: int, anchors: int, kpt_shape=(17, 3)):
    """n persons on a grid, far enough apart that NMS keeps every one, scores 0.9 down."""
    k, d = kpt_shape
    side = int(np.ceil(np.sqrt(n)))
    step = size / side
    rows = []
    for i in range(n):
        cx, cy = (i % side + 0.5) * step, (i // side + 0.5) * step
        kp = [cx, cy, 0.7][:d] * k
        rows.append([cx, cy, step / 2, step / 2, 0.9 - i * 0.001, *kp])
    return pose_table(rows, anchors, kpt_shape)


def test_predict_answers_in_the_results_to_json_shape(tmp_path):
    client, _ = app(export_dir(tmp_path), TableEngine())
    body = client.post(PREDICT, json={"image": jpeg_b64(64, 128)}).get_json()
    assert set(body) == {"log_id", "results", "shape"} and body["shape"] == [64, 128]
    first, second = body["results"]
    assert first == {
        "name": "person",
        "class": 0,
        "confidence": 0.9,
        "box": {"x1": 44.0, "y1": 0.0, "x2": 84.0, "y2": 64.0},
        "keypoints": {"x": [60.0] * 17, "y": [28.0] * 17, "visible": [0.8] * 17},
    }
    assert second["confidence"] == 0.5
    assert len(client.post(PREDICT, json={"image": jpeg_b64(64, 128), "conf": 0.5}).get_json()["results"]) == 1
    assert len(client.post(PREDICT, json={"image": jpeg_b64(64, 128), "iou": 0.95}).get_json()["results"]) == 3
    assert len(client.post(PREDICT, json={"image": jpeg_b64(64, 128), "max_det": 1}).get_json()["results"]) == 1
    assert len(client.post(PREDICT, json={"image": jpeg_b64(64, 128), "imgsz": 64}).get_json()["results"]) == 2


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("conf", 1.5, r"'conf' must be in \[0.0, 1.0\], got 1.5"),
        ("conf", "0.3", r"'conf' must be a number"),
        ("iou", -0.1, r"'iou' must be in \[0.0, 1.0\]"),
        ("imgsz", 320, r"'imgsz' must be 64 \(the size this export was made for\), got 320"),
        ("imgsz", 64.5, r"'imgsz' must be an integer"),
        ("max_det", 0, r"'max_det' must be an integer in \[1, 30000\], got 0"),
        ("max_det", True, r"'max_det' must be an integer"),
    ],
)
def test_predict_settings_are_validated(tmp_path, field, value, message):
    client, _ = app(export_dir(tmp_path), TableEngine())
    body = client.post(PREDICT, json={"image": jpeg_b64(), field: value}).get_json()
    assert body["error_code"] == InvalidArgument.easydl_code and "results" not in body
    limits = ImageLimits(1 << 20, 15, 4096)
    with pytest.raises(InvalidArgument, match=message):
        UJ.query(UJ.decode({"image": jpeg_b64(), field: value}, limits), Query(), (64, 64))


def test_zero_persons_on_every_route(tmp_path):
    client, _ = app(export_dir(tmp_path), TableEngine(pose_table([], 84)))
    assert client.post(PREDICT, json={"image": jpeg_b64()}).get_json()["results"] == []
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": jpeg_b64()}).get_json()
    assert easy["person_num"] == 0 and easy["person_info"] == []
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64()}).get_json()
    assert pdx["result"]["persons"] == [] and "image" in pdx["result"]


@pytest.mark.parametrize("size, anchors", [(320, 2100), (640, 8400)])
def test_many_persons_at_both_input_sizes(tmp_path, size, anchors):
    table = crowd(64, size, anchors)
    d = export_dir(tmp_path, metadata(imgsz=(size, size)), table)
    client, _ = app(d, TableEngine(table))
    body = client.post(PREDICT, json={"image": jpeg_b64(size, size), "imgsz": size}).get_json()
    assert len(body["results"]) == 64
    scores = [r["confidence"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64(size, size), "visualize": False}).get_json()
    assert len(pdx["result"]["persons"]) == 64
    assert len(client.post(PREDICT, json={"image": jpeg_b64(size, size), "max_det": 50}).get_json()["results"]) == 50


@pytest.mark.parametrize("h, w", [(15, 15), (15, 4096), (4096, 15), (3000, 4000), (100, 37)])
def test_tiny_huge_and_non_square_images_scale_back_inside_the_image(tmp_path, h, w):
    table = crowd(16, 64, 84)
    client, _ = app(export_dir(tmp_path, table=table), TableEngine(table))
    body = client.post(PREDICT, json={"image": jpeg_b64(h, w), "conf": 0.01}).get_json()
    assert body["shape"] == [h, w] and body["results"]
    for r in body["results"]:
        b = r["box"]
        assert 0 <= b["x1"] <= b["x2"] <= w and 0 <= b["y1"] <= b["y2"] <= h
        assert all(0 <= x <= w for x in r["keypoints"]["x"]) and all(0 <= y <= h for y in r["keypoints"]["y"])


def test_another_kpt_shape_has_no_visible_field(tmp_path):
    table = crowd(3, 64, 84, (5, 2))
    client, _ = app(export_dir(tmp_path, metadata(kpt_shape=(5, 2)), table), TableEngine(table))
    (first, *_) = client.post(PREDICT, json={"image": jpeg_b64(64, 64)}).get_json()["results"]
    assert set(first["keypoints"]) == {"x", "y"} and len(first["keypoints"]["x"]) == 5


def test_a_detection_export_is_refused_at_start(tmp_path):
    with pytest.raises(ModelInvalid, match=r"an Ultralytics 'detect' export; the keypoint service serves pose"):
        app(export_dir(tmp_path, metadata(task="detect"), TABLE[:5]), TableEngine(TABLE[:5]))


def test_a_top_down_deploy_answers_predict_too_without_yolo_settings(tmp_path):
    from tests.unit.api.test_routes_keypoint import DET_YML, KPT_YML, FakeDetector, FakeKeypoints, write_bundle
    from visionpack.api.app import create_app
    from visionpack.config import ServiceConfig

    det, kpt = write_bundle(tmp_path, "det", DET_YML), write_bundle(tmp_path, "kpt", KPT_YML)
    engines = {"det": FakeDetector(), "kpt": FakeKeypoints()}
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"detector": str(det), "keypoint": str(kpt)})
    client = create_app(cfg, engine_factory=lambda b, c: engines[b.path.name], gate=None).test_client()
    body = client.post(PREDICT, json={"image": jpeg_b64(128, 128), "max_det": 1}).get_json()
    assert len(body["results"]) <= 1 and body["shape"] == [128, 128]
    for key in ("iou", "imgsz"):
        refused = client.post(PREDICT, json={"image": jpeg_b64(), key: 1}).get_json()
        assert refused["error_code"] == InvalidArgument.easydl_code


def test_no_persons_of_a_top_down_pipeline_encode_as_no_results():
    assert UJ.encode(UJ.detections([], (10, 20))) == {"results": [], "shape": [10, 20]}
