"""The keypoint service's pipeline seam (services/pose/): the pipeline is picked from the deploy's model roles
and the bundles' tasks, so a one-stage model is one more module."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import ConfigInvalid
from visionpack.inference.det_postprocess import DetBox
from visionpack.services import pose
from visionpack.services.pose.pipeline import Options, Person
from visionpack.services.pose.top_down import TopDownPipeline

DEPLOY = "demo-keypoint"
KPT_YML = {
    "Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}, {"type": "Permute"}],
    "Global": {"model_name": "YOLOv8n-pose"},
}


def write_bundle(root, name, cfg):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "inference.json").write_text("{}")
    (d / "inference.pdiparams").write_bytes(b"\0")
    (d / "inference.yml").write_text(yaml.safe_dump(cfg))
    return d


class OneStage:
    """What issue 17's module will be: one model gives boxes and keypoints."""

    roles = ("pose",)
    made: list = []

    @classmethod
    def accepts(cls, bundles):
        return bundles["pose"].task == "keypoint_detection"

    def __init__(self, cfg, opts, bundles, engines):
        self.engine = engines(bundles["pose"], cfg)
        self.threshold = 0.5 if opts.det_threshold is None else opts.det_threshold
        self.warm = 0
        OneStage.made.append(self)

    def predict(self, rgb, threshold):
        out = self.engine.run({"image": rgb[None]})[0]
        thr = self.threshold if threshold is None else threshold
        return [
            Person(DetBox(0, "person", float(r[0]), *map(float, r[1:5])), r[5:].reshape(-1, 3), float(r[0]))
            for r in out
            if r[0] > thr
        ]

    def warmup(self):
        self.warm += 1


class OneStageEngine:
    input_names = ["image"]

    def run(self, feeds):
        kpts = np.tile(np.array([[10.0, 20.0, 0.9]], np.float32), (17, 1)).ravel()
        rows = np.array([[0.9, 1, 2, 30, 40, *kpts], [0.2, 5, 5, 9, 9, *kpts]], np.float32)
        return [rows]


@pytest.fixture
def with_one_stage(monkeypatch):
    shipped = pose.pipeline_classes()
    monkeypatch.setattr(pose, "pipeline_classes", lambda: [*shipped, OneStage])
    OneStage.made = []
    return OneStage


def test_the_shipped_pipelines_are_found_by_module():
    from visionpack.services.pose.yolo_pose import YoloPosePipeline

    assert pose.pipeline_classes() == [TopDownPipeline, YoloPosePipeline]


def test_a_one_stage_pipeline_serves_both_dialects_when_the_deploy_names_its_role(tmp_path, with_one_stage):
    from tests.unit.fakes import jpeg_b64

    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(write_bundle(tmp_path, "p", KPT_YML))})
    client = create_app(cfg, engine_factory=lambda b, c: OneStageEngine(), gate=None).test_client()
    (made,) = with_one_stage.made
    assert made.warm == 1  # the service's warmup is the pipeline's
    pdx = client.post("/human-keypoint-detection", json={"image": jpeg_b64(), "visualize": False}).get_json()
    (person,) = pdx["result"]["persons"]
    assert person["bbox"] == [1, 2, 30, 40] and person["kpts"][0] == pytest.approx([10, 20, 0.9])
    easy = client.post(f"/{DEPLOY}/HumanKeypointDetection", json={"image": jpeg_b64(), "threshold": 0.1}).get_json()
    assert easy["person_num"] == 2 and easy["person_info"][0]["body_parts"]["nose"]["x"] == 10


def test_roles_no_pipeline_takes_name_every_pipelines_roles(tmp_path, with_one_stage):
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": "x", "detector": "y"})
    with pytest.raises(
        ConfigInvalid,
        match=r"needs models \['detector', 'keypoint'\] or \['pose'\]; "
        r"missing \['keypoint'\], unknown \['pose'\]",
    ):
        pose.build_pipeline(cfg, Options(), lambda b, c: OneStageEngine())


def test_the_bundles_tasks_choose_between_pipelines_of_the_same_roles(tmp_path, monkeypatch):
    class Heatmaps(OneStage):
        @classmethod
        def accepts(cls, bundles):
            return bundles["pose"].model_name == "heatmap-net"

    class Regression(OneStage):
        pass

    monkeypatch.setattr(pose, "pipeline_classes", lambda: [Heatmaps, Regression])
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(write_bundle(tmp_path, "p", KPT_YML))})
    assert type(pose.build_pipeline(cfg, Options(), lambda b, c: OneStageEngine())) is Regression
    # None accepts (an object-detection bundle): the first is built and its own checks speak.
    det = write_bundle(tmp_path, "d", {"Preprocess": [{"type": "Resize"}], "label_list": ["person"]})
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={"pose": str(det)})
    assert type(pose.build_pipeline(cfg, Options(), lambda b, c: OneStageEngine())) is Heatmaps


def test_the_top_down_pipeline_takes_a_detector_and_a_keypoint_model(tmp_path):
    from visionpack.bundle import load_bundle

    det = load_bundle(write_bundle(tmp_path, "d", {"Preprocess": [{"type": "Resize"}], "label_list": ["person"]}))
    kpt = load_bundle(write_bundle(tmp_path, "k", KPT_YML))
    assert TopDownPipeline.accepts({"detector": det, "keypoint": kpt})
    assert not TopDownPipeline.accepts({"detector": kpt, "keypoint": det})
