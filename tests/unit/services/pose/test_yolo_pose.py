"""The one-stage YOLOv8-pose pipeline (services/pose/yolo_pose.py) with fake engines: chosen for an export
directory, answering both keypoint dialects, refusing what the export's graph cannot serve, batching."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.unit.fakes import jpeg_b64
from tests.yolo_onnx import metadata, pose_table, write_onnx, write_paddle_export
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import ConfigInvalid, ModelInvalid
from visionpack.services import pose
from visionpack.services.pose.pipeline import Options, parse_options

DEPLOY = "demo-yolo-pose"
KPTS = [30.0, 30.0, 0.8] * 17
TABLE = pose_table(
    [[32, 32, 20, 40, 0.9, *KPTS], [33, 32, 20, 40, 0.85, *KPTS], [10, 10, 8, 8, 0.5, *[10.0, 10.0, 0.5] * 17]], 84
)


class TableEngine:
    """Answers ``table`` for every image of a batch; records batch sizes; may refuse batches."""

    def __init__(self, table=TABLE, name="images", batches=True, skew=0.0):
        self.table, self.input_names, self.batches, self.skew = table, [name], batches, skew
        self.sizes: list[int] = []

    def run(self, feeds):
        (x,) = feeds.values()
        self.sizes.append(len(x))
        if len(x) > 1 and not self.batches:
            raise RuntimeError("Got invalid dimensions for input: x0 index: 0 Got: 2 Expected: 1")
        out = np.repeat(self.table[None], len(x), axis=0)
        out[1:] += self.skew
        return [out]


def export_dir(tmp_path, meta=None, table=TABLE, **kw):
    return write_onnx(tmp_path / "yolo" / "yolov8n-pose.onnx", table, meta or metadata(), **kw).parent


def app(model_dir, engine, **cfg):
    seen = {}

    def factory(bundle, c):
        seen["cfg"] = c
        return engine

    c = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(model_dir)}, **cfg)
    return create_app(c, engine_factory=factory, gate=None).test_client(), seen


def test_an_export_directory_gets_the_yolo_pipeline_and_answers_both_dialects(tmp_path):
    client, _ = app(export_dir(tmp_path), TableEngine())
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64(64, 128), "visualize": False}).get_json()
    first, second = pdx["result"]["persons"]  # the 0.85 twin is suppressed by NMS
    # 128x64 image into 64x64: gain 0.5, pad_y 16; (22, 12, 42, 52) -> (44, -8, 84, 72) clipped
    assert first["bbox"] == [44, 0, 84, 64] and first["detScore"] == pytest.approx(0.9)
    assert first["kpts"][0] == pytest.approx([60, 28, 0.8]) and first["kptScore"] == pytest.approx(0.8)
    assert second["detScore"] == pytest.approx(0.5)
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64(64, 128), "detThreshold": 0.5}).get_json()
    assert len(pdx["result"]["persons"]) == 1 and "image" in pdx["result"]  # strict >, visualised by default
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": jpeg_b64(64, 128)}).get_json()
    assert easy["person_num"] == 2
    assert easy["person_info"][0]["body_parts"]["nose"] == pytest.approx({"x": 60, "y": 28, "score": 0.8})
    assert easy["person_info"][0]["location"]["width"] == 40


def test_zero_persons(tmp_path):
    client, _ = app(export_dir(tmp_path), TableEngine(pose_table([], 84)))
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64(), "visualize": False}).get_json()
    assert pdx["result"] == {"persons": []}


def test_another_kpt_shape_without_keypoint_scores(tmp_path):
    table = pose_table([[32, 32, 20, 20, 0.9, *[40.0, 24.0] * 5]], 84, (5, 2))
    client, _ = app(export_dir(tmp_path, metadata(kpt_shape=(5, 2)), table), TableEngine(table))
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": jpeg_b64(64, 64)}).get_json()
    (person,) = easy["person_info"]
    assert sorted(person["body_parts"]) == [f"keypoint_{i}" for i in range(5)]
    assert person["body_parts"]["keypoint_4"] == {"x": 40, "y": 24, "score": 1.0}


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"out_shape": [1, 57, 84]}, r"output has 57 channels; .* kpt_shape \[17, 3\] has 4 \+ 1 \+ 51 = 56"),
        ({"in_shape": [1, 4, 64, 64]}, r"the input must have 3 channels, it declares 4"),
        ({"in_shape": [1, 3, 32, 64]}, r"input 32x64 but metadata imgsz \[64, 64\]"),
        ({"in_shape": [1, 3, 64]}, r"one \[batch, 3, height, width\] input"),
        ({"out_shape": [1, 56]}, r"one \[batch, channels, anchors\] output"),
    ],
)
def test_a_graph_the_metadata_does_not_describe_is_refused(tmp_path, kw, message):
    with pytest.raises(ModelInvalid, match=message):
        app(export_dir(tmp_path, **kw), TableEngine())


def test_an_engine_with_two_inputs_is_refused(tmp_path):
    eng = TableEngine()
    eng.input_names = ["images", "scale"]
    with pytest.raises(ModelInvalid, match=r"takes one image input, this one takes \['images', 'scale'\]"):
        app(export_dir(tmp_path), eng)


def test_a_paddlex_bundle_under_role_pose_is_refused_by_name(tmp_path):
    from tests.unit.services.pose.test_pipeline import KPT_YML, write_bundle

    with pytest.raises(ModelInvalid, match=r"is not an Ultralytics pose export"):
        app(write_bundle(tmp_path, "k", KPT_YML), TableEngine())


def test_wrong_roles_name_the_yolo_role(tmp_path):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": "x", "keypoint": "y"})
    with pytest.raises(ConfigInvalid, match=r"\['detector', 'keypoint'\] or \['pose'\]"):
        pose.build_pipeline(cfg, Options(), lambda b, c: TableEngine())


def test_a_paddle_export_runs_with_onednn_off_and_its_output_is_checked_at_warmup(tmp_path):
    folder = write_paddle_export(tmp_path / "m" / "yolov8n-pose_paddle_model", metadata())
    client, seen = app(folder.parent, TableEngine(name="x0"), onednn=True)
    assert seen["cfg"].onednn is False
    assert (
        len(client.post("/human-keypoint-detection", json={"image": jpeg_b64()}).get_json()["result"]["persons"]) == 2
    )
    with pytest.raises(ModelInvalid, match=r"output has 55 channels"):
        app(folder.parent, TableEngine(TABLE[:55], name="x0"))


def pipeline(model_dir, engine, max_batch=4):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(model_dir)}, max_batch=max_batch)
    return pose.build_pipeline(cfg, Options(), lambda b, c: engine)


def test_a_fixed_batch_export_is_fed_exactly_its_batch(tmp_path):
    eng = TableEngine()
    p = pipeline(export_dir(tmp_path, batch=2), eng)
    p.warmup()
    assert p.batcher.max_batch == 2 and eng.sizes == [2]
    assert len(p.predict(np.zeros((64, 64, 3), np.uint8), None)) == 2 and eng.sizes == [2, 2]
    one = pipeline(export_dir(tmp_path / "b1", batch=1), TableEngine())
    assert one.batcher.max_batch == 1


def test_a_dynamic_batch_export_batches_queued_requests(tmp_path):
    eng = TableEngine()
    p = pipeline(export_dir(tmp_path, batch="batch"), eng, max_batch=3)
    p.warmup()
    assert p.batcher.max_batch == 3 and eng.sizes == [1, 2]  # probed: a batch of two answers alike
    gate = threading.Event()
    run = eng.run

    def slow(feeds):
        gate.wait(30)
        return run(feeds)

    eng.run = slow
    threads = [threading.Thread(target=p.predict, args=(np.zeros((64, 64, 3), np.uint8), None)) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(p.batcher._queue) < 3 and time.monotonic() < deadline:  # the leader runs, three wait
        threading.Event().wait(0.01)
    gate.set()
    for t in threads:
        t.join(30)
    assert eng.sizes[2:] == [1, 3]


@pytest.mark.parametrize("engine", [TableEngine(name="x0", batches=False), TableEngine(name="x0", skew=0.5)])
def test_a_paddle_export_that_does_not_take_batches_is_served_one_at_a_time(tmp_path, engine):
    folder = write_paddle_export(tmp_path / "m_paddle_model", metadata())
    p = pipeline(folder, engine)
    assert p.batcher.max_batch == 4
    p.warmup()
    assert p.batcher.max_batch == 1
    p.warmup()  # probed once
    assert engine.sizes == [1, 2, 1]


def test_a_paddle_export_that_takes_batches_keeps_batching(tmp_path):
    p = pipeline(write_paddle_export(tmp_path / "m_paddle_model", metadata()), TableEngine(name="x0"))
    p.warmup()
    assert p.batcher.max_batch == 4


def test_iou_and_max_det_options(tmp_path):
    assert parse_options({"iou": 0.5, "max_det": 1}, True) == Options(iou=0.5, max_det=1)
    with pytest.raises(ConfigInvalid, match=r"'options.iou' must be in \[0.0, 1.0\], got 2"):
        parse_options({"iou": 2}, True)
    with pytest.raises(ConfigInvalid, match=r"'options.max_det' must be an integer in \[1, 30000\], got 0"):
        parse_options({"max_det": 0}, True)
    client, _ = app(export_dir(tmp_path), TableEngine(), options={"iou": 0.95, "max_det": 2})
    persons = client.post("/human-keypoint-detection", json={"image": jpeg_b64(64, 128)}).get_json()["result"][
        "persons"
    ]
    assert [p["detScore"] for p in persons] == pytest.approx([0.9, 0.85])  # the twin survives IoU 0.95
