"""PaddleX face-feature contract (inference/feature.py) and the face service's model-level errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from tests.unit import face_fakes as F
from visionpack.api.app import create_app
from visionpack.errors import ModelInvalid
from visionpack.inference import feature as FT


def spec(ops, post=None):
    return {
        "PreProcess": {"transform_ops": ops},
        "PostProcess": post if post is not None else {"NormalizeFeatures": None},
    }


MOBILEFACENET = [
    {"ResizeImage": {"size": [112, 112], "return_numpy": False, "interpolation": "bilinear", "backend": "cv2"}},
    {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "order": "hwc"}},
    {"ToCHWImage": None},
]


def test_mobilefacenet_style_yml():
    s = FT.read_spec(spec(MOBILEFACENET))
    assert s.input_size == (112, 112) and s.normalize
    img = np.full((60, 50, 3), 255, np.uint8)
    x = FT.preprocess(s, [img, img])
    assert x.shape == (2, 3, 112, 112) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0, atol=1e-6)  # (1 - 0.5) / 0.5


def test_int_size_and_decode_op_and_no_normalize_features():
    s = FT.read_spec(
        spec([{"DecodeImage": {"to_rgb": True}}, {"ResizeImage": {"size": 64}}, {"ToCHWImage": None}], post={})
    )
    assert s.input_size == (64, 64) and not s.normalize
    raw = np.array([[3.0, 4.0]], np.float32)
    np.testing.assert_allclose(FT.postprocess(s, [raw]), raw)
    s2 = FT.read_spec(spec(MOBILEFACENET))
    np.testing.assert_allclose(FT.postprocess(s2, [raw]), [[0.6, 0.8]])


def test_l2_normalize_keeps_zero_vectors_finite_and_checks_shape():
    out = FT.l2_normalize(np.array([[0.0, 0.0], [0.0, 2.0]]))
    np.testing.assert_allclose(out, [[0, 0], [0, 1]])
    with pytest.raises(ModelInvalid):
        FT.l2_normalize(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    "config,message",
    [
        ({}, "lacks PreProcess"),
        ({"PreProcess": {"transform_ops": "x"}}, "must be a list"),
        (spec([{"ResizeImage": {"size": 112}, "ToCHWImage": None}]), "single-key"),
        (spec([{"ResizeImage": {}}, {"ToCHWImage": None}]), "needs size or resize_short"),
        (spec([{"ResizeImage": {"resize_short": 128}}, {"ToCHWImage": None}]), "fixed size"),
        (spec([{"ResizeImage": {"size": 112}}]), "ToCHWImage"),
        (spec([{"ResizeImage": {"size": 112}}, {"NormalizeImage": {"order": "chw"}}, {"ToCHWImage": None}]), "order"),
        (
            spec([{"ResizeImage": {"size": 112}}, {"NormalizeImage": {"channel_num": 4}}, {"ToCHWImage": None}]),
            "3 channels",
        ),
        (
            spec([{"ResizeImage": {"size": 112}}, {"NormalizeImage": {"scale": "a/b"}}, {"ToCHWImage": None}]),
            "not a number",
        ),
        (spec([{"ResizeImage": {"size": 112}}, {"CropImage": {"size": 100}}, {"ToCHWImage": None}]), "unsupported"),
    ],
)
def test_feature_yml_errors(config, message):
    with pytest.raises(ModelInvalid, match=message):
        FT.read_spec(config)


def test_mtcnn_bundle_without_output_names_is_a_model_error(tmp_path):
    cfg = F.face_config(tmp_path)
    onet = tmp_path / "fake_mtcnn_onet"
    (onet / "manifest.json").write_text(json.dumps({"schema": 1}))
    (onet / "inference.yml").write_text(yaml.safe_dump({"Global": {"model_name": "x"}}))
    with pytest.raises(ModelInvalid, match="name its outputs"):
        create_app(cfg, engine_factory=F.factory(), gate=None)


def test_a_stage_returning_the_wrong_outputs_is_a_model_error(tmp_path):
    cfg = F.face_config(tmp_path)
    make = F.factory()

    class TwoOutputs(F.FakeHead):
        def run(self, feeds):
            return super().run(feeds)[:2]

    def factory(bundle, c):
        return TwoOutputs(True) if bundle.path.name.endswith("onet") else make(bundle, c)

    client = create_app(cfg, engine_factory=factory, gate=None).test_client()
    r = client.post("/face-recognition-infer", json={"image": F.b64(F.picture(F.RED))})
    assert r.status_code == 500 and r.get_json()["errorMsg"] == "Internal server error"


def test_blazeface_style_detector_gets_im_shape_by_name(tmp_path):
    seen = {}

    class BlazeFace(F.FakePaddleXDetector):
        input_names = ["im_shape", "image", "scale_factor"]

        def run(self, feeds):
            seen.update({k: v.copy() for k, v in feeds.items()})
            return super().run(feeds)

    cfg = F.face_config(tmp_path, detector="paddlex")
    make = F.factory()
    client = create_app(
        cfg, engine_factory=lambda b, c: BlazeFace() if b.path.name == "fake_face_det" else make(b, c), gate=None
    ).test_client()
    r = client.post("/face-recognition-infer", json={"image": F.b64(F.picture(F.RED, size=(100, 200)))})
    assert r.status_code == 200 and len(r.get_json()["result"]["faces"]) == 1
    np.testing.assert_allclose(seen["im_shape"], [[64, 64]])
    np.testing.assert_allclose(seen["scale_factor"], [[0.64, 0.32]])


def test_a_corrupt_stored_crop_stops_reembedding_with_a_model_error(tmp_path):
    cfg = F.face_config(tmp_path)
    app = create_app(cfg, engine_factory=F.factory(), gate=None)
    svc = app.extensions["visionpack"].service
    from visionpack.gallery import NewFace

    svc.gallery.store.add("default", [NewFace("x", np.ones(12, np.float32), b"not a png")], "another-model")
    with pytest.raises(ModelInvalid, match="does not decode"):
        svc.migrate()


def test_service_keeps_working_after_an_unknown_feature_dimension_change(tmp_path):
    # Vectors of another size made by an old model are migrated, never fed to faiss as-is.
    cfg = F.face_config(tmp_path)
    app = create_app(cfg, engine_factory=F.factory(), gate=None)
    svc = app.extensions["visionpack"].service
    from visionpack.gallery import NewFace

    chip, _ = svc.enroll_chip(F.picture(F.RED))
    svc.gallery.store.add("default", [NewFace("old", np.ones(7, np.float32), svc_png(chip))], "old-model")
    cfg2 = dataclasses.replace(cfg)
    app2 = create_app(cfg2, engine_factory=F.factory(), gate=None)
    r = app2.test_client().post("/face-recognition-infer", json={"image": F.b64(F.picture(F.RED))})
    hits = r.get_json()["result"]["faces"][0]["recResults"]
    assert hits and hits[0]["label"] == "old"


def svc_png(rgb):
    from visionpack.services.face import png

    return png(rgb)
