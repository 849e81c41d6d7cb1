"""PaddleX classification pre/post-processing, checked against PaddleX's documented arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from visionpack.errors import ModelInvalid
from visionpack.inference import cls_transforms as T

CFG = {
    "PreProcess": {
        "transform_ops": [
            {"ResizeImage": {"resize_short": 256}},
            {"CropImage": {"size": 224}},
            {
                "NormalizeImage": {
                    "channel_num": 3,
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "order": "",
                    "scale": 0.00392156862745098,
                }
            },
            {"ToCHWImage": None},
        ]
    },
    "PostProcess": {"Topk": {"topk": 5, "label_list": ["a", "b", "c", "d", "e", "f", "g"]}},
}


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_resize_short_uses_python_round_like_paddlex():
    # 333 * 256/250 = 340.992 -> 341; 250 -> 256
    out = T.resize_short(256)(rgb(250, 333))
    assert out.shape[:2] == (256, 341)


def test_resize_short_banker_rounding_edge():
    # h=3, w=5, target 3 -> scale 1, exact; h=4,w=10,target 5 -> 12.5 rounds to 12 (banker's)
    assert T.resize_short(5)(rgb(4, 10)).shape[:2] == (5, 12)


def test_center_crop_offsets_floor_like_paddlex():
    img = np.arange(7 * 9).reshape(7, 9, 1).repeat(3, axis=2).astype(np.uint8)
    out = T.center_crop(4)(img)
    # x1 = (9-4)//2 = 2, y1 = (7-4)//2 = 1
    assert out[0, 0, 0] == img[1, 2, 0]
    assert out.shape == (4, 4, 3)


def test_crop_larger_than_image_is_a_model_config_error():
    with pytest.raises(ModelInvalid):
        T.center_crop(300)(rgb(100, 100))


def test_normalize_matches_scale_mean_std_formula():
    img = rgb(5, 5)
    out = T.normalize(1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(img)
    expected = (img.astype(np.float64) / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert out.dtype == np.float32
    assert np.abs(out - expected).max() < 1e-5


def test_full_pipeline_shape_and_layout():
    ops = T.build_preprocess(CFG)
    x = T.batch([T.preprocess(ops, rgb(480, 640))])
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32


def test_scale_given_as_fraction_text_is_accepted():
    cfg = {
        "PreProcess": {
            "transform_ops": [{"NormalizeImage": {"scale": "1.0/255.0", "mean": [0, 0, 0], "std": [1, 1, 1]}}]
        }
    }
    (op,) = T.build_preprocess(cfg)
    assert np.allclose(op(np.full((1, 1, 3), 255, np.uint8)), 1.0)


def test_decode_image_training_op_is_ignored():
    cfg = {"PreProcess": {"transform_ops": [{"DecodeImage": {"to_rgb": True}}, {"ToCHWImage": None}]}}
    assert len(T.build_preprocess(cfg)) == 1


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"PreProcess": {"transform_ops": [{"Mystery": {}}]}},
        {"PreProcess": {"transform_ops": [{"ResizeImage": {}}]}},
        {"PreProcess": {"transform_ops": [{"NormalizeImage": {"order": "chw"}}]}},
        {"PreProcess": {"transform_ops": [{"NormalizeImage": {"scale": "x/y"}}]}},
        {"PreProcess": {"transform_ops": [{"A": 1, "B": 2}]}},
    ],
)
def test_unsupported_yml_is_a_clear_model_error(cfg):
    with pytest.raises(ModelInvalid):
        T.build_preprocess(cfg)


def test_topk_orders_best_first_and_rounds_to_5_decimals():
    probs = np.array([[0.1, 0.123456789, 0.5, 0.0, 0.276543211, 0.0, 0.0]], np.float32)
    (cats,) = T.topk(probs, 3, CFG["PostProcess"]["Topk"]["label_list"])
    assert [c.name for c in cats] == ["c", "e", "b"]
    assert [c.id for c in cats] == [2, 4, 1]
    assert cats[2].score == pytest.approx(0.12346, abs=1e-9)


def test_topk_larger_than_classes_is_clamped():
    (cats,) = T.topk(np.full((1, 7), 1 / 7, np.float32), 100, None)
    assert len(cats) == 7
    assert cats[0].name == str(cats[0].id)  # PaddleX falls back to the id as name


def test_build_topk_reads_labels_and_default_k():
    spec = T.build_topk(CFG)
    assert spec.topk == 5 and spec.labels[0] == "a"
    with pytest.raises(ModelInvalid):
        T.build_topk({"PostProcess": {}})
