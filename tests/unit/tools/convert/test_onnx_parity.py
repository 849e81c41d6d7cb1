"""tools/convert/onnx_parity.py: sample feeds from the bundle's yml, the comparison with Paddle, parity.npz."""

from __future__ import annotations

import sys
import zipfile

import numpy as np
import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import onnx_parity as P  # noqa: E402

CAT = REPO / "package" / "samples" / "cat.jpg"
CLS_CONFIG = {
    "PreProcess": {
        "transform_ops": [
            {"ResizeImage": {"resize_short": 256}},
            {"NormalizeImage": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "scale": 1 / 255}},
        ]
    }
}
DET_CONFIG = {"Preprocess": [{"type": "NormalizeImage", "mean": [127.5] * 3, "std": [128.0] * 3, "is_scale": False}]}


def test_normalize_follows_either_yml_style_and_has_a_default():
    rgb = np.full((2, 2, 3), 255, np.uint8)
    assert np.allclose(P.normalize(rgb, CLS_CONFIG), 2.0)  # (1 - 0.5) / 0.25
    assert np.allclose(P.normalize(rgb, DET_CONFIG), (255 - 127.5) / 128)  # is_scale false: pixel units
    scaled = {"Preprocess": [{"type": "NormalizeImage", "mean": [0.0] * 3, "std": [0.5] * 3}]}
    assert np.allclose(P.normalize(rgb, scaled), 2.0)  # is_scale defaults to true: / 255
    assert np.allclose(P.normalize(rgb, {}), 1.0) and P.normalize(rgb, {}).dtype == np.float32


def test_sample_feeds_make_images_of_the_graph_size_and_a_mirrored_second_item():
    feeds = P.sample_feeds([("x", [None, 3, 24, 32], "float32")], CLS_CONFIG, CAT, 2)
    x = feeds["x"]
    assert x.shape == (2, 3, 24, 32) and x.dtype == np.float32
    assert np.array_equal(x[1], x[0][:, :, ::-1]) and not np.array_equal(x[0], x[1])
    dyn = P.sample_feeds([("x", [None, 3, None, None], "float32")], {}, CAT, 1)["x"]
    assert dyn.shape == (1, 3, *P.DEFAULT_HW)


def test_detector_side_inputs_are_set_as_paddlex_does():
    specs = [
        ("image", [1, 3, 20, 30], "float32"),
        ("scale_factor", [None, 2], "float32"),
        ("im_shape", [None, 2], "float32"),
    ]
    feeds = P.sample_feeds(specs, DET_CONFIG, CAT, 1)
    assert feeds["scale_factor"].tolist() == [[1.0, 1.0]] and feeds["im_shape"].tolist() == [[20.0, 30.0]]


@pytest.mark.parametrize(
    "spec,match",
    [
        (("mask", [None, 10], "float32"), "cannot make a sample for input mask"),
        (("x", [None, 1, 8, 8], "float32"), "only 3-channel images"),
    ],
)
def test_an_input_we_cannot_sample_is_named(spec, match):
    with pytest.raises(ValueError, match=match):
        P.sample_feeds([spec], {}, CAT, 1)


def test_an_unreadable_sample_image_is_named(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read the sample image"):
        P.sample_feeds([("x", [1, 3, 8, 8], "float32")], {}, bad, 1)


def test_sample_images_per_task():
    assert P.sample_image("face_feature") == P.SAMPLES / "faces/obama_1.jpg"
    assert P.sample_image("something_else") == P.SAMPLES / "cat.jpg"
    assert P.sample_image("face_feature", CAT) == CAT
    for name in P.SAMPLE_BY_TASK.values():
        assert (P.SAMPLES / name).is_file(), name


def test_compare_reports_the_worst_output_and_topk():
    ref = [np.array([[0.1, 0.7, 0.2]], np.float32), np.array([1.0, 2.0], np.float32)]
    same = P.compare(ref, [r.copy() for r in ref], "image_classification")
    assert same == {"max_abs_diff": 0.0, "cosine": 1.0, "topk_same": True}
    swapped = [np.array([[0.1, 0.2, 0.7]], np.float32), ref[1] + 0.5]
    got = P.compare(ref, swapped, "image_classification")
    assert got["max_abs_diff"] == pytest.approx(0.5) and got["topk_same"] is False and got["cosine"] < 0.99
    assert P.compare(ref, ref, "face_feature")["topk_same"] is None
    zeros = [np.zeros((2, 3), np.float32)]
    assert P.compare(zeros, zeros, "x")["cosine"] == 1.0  # two zero outputs agree
    assert P.compare(zeros, [np.ones((2, 3), np.float32)], "x")["cosine"] == 0.0


@pytest.mark.parametrize(
    "got,match",
    [
        ([np.zeros(3)], "1 outputs, Paddle gives 2"),
        ([np.zeros(3), np.zeros(4)], r"output 1 has shape \[4\], Paddle's is \[3\]"),
        ([np.zeros(3), np.array([0.0, np.nan, 0.0])], "NaN or infinity"),
    ],
)
def test_outputs_that_cannot_be_compared_are_refused(got, match):
    with pytest.raises(ValueError, match=match):
        P.compare([np.zeros(3), np.zeros(3)], got, "x")


def test_detector_boxes_compare_as_a_set():
    boxes = np.array([[0, 0.9, 1, 1, 5, 5], [0, 0.5, 2, 2, 6, 6], [0, 0.7, 3, 3, 7, 7]], np.float32)
    shuffled = boxes[[2, 0, 1]]
    assert P.compare([boxes], [shuffled], "object_detection")["max_abs_diff"] == 0.0
    assert P.compare([boxes], [shuffled], "keypoint_detection")["max_abs_diff"] > 0  # order matters elsewhere
    assert P.box_order(shuffled)[:, 1].tolist() == pytest.approx([0.9, 0.7, 0.5])


def test_agreement_needs_every_bound():
    tol = {"max_abs_diff": 1e-4, "cosine_min": 0.9999}
    assert P.agrees({"max_abs_diff": 1e-5, "cosine": 1.0, "topk_same": None}, tol)
    assert not P.agrees({"max_abs_diff": 1e-3, "cosine": 1.0, "topk_same": None}, tol)
    assert not P.agrees({"max_abs_diff": 0.0, "cosine": 0.99, "topk_same": None}, tol)
    assert not P.agrees({"max_abs_diff": 0.0, "cosine": 1.0, "topk_same": False}, tol)


def test_parity_npz_is_the_contract_and_reproducible(tmp_path):
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(1, 6), "scale_factor": np.ones((1, 2), np.float32)}
    outs = [np.array([[1.0, 2.0]], np.float32), np.array([3], np.int32)]
    data = P.parity_npz(feeds, outs)
    assert data == P.parity_npz(feeds, outs)  # byte for byte: no timestamps
    path = tmp_path / "parity.npz"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["input:scale_factor.npy", "input:x.npy", "output:0.npy", "output:1.npy"]
    with np.load(path) as npz:  # what any reader (the install-time check) sees
        assert np.array_equal(npz["input:x"], feeds["x"]) and npz["output:1"].dtype == np.int32
    got_feeds, got_outs = P.read_parity(path)
    assert set(got_feeds) == {"x", "scale_factor"} and [o.tolist() for o in got_outs] == [o.tolist() for o in outs]


def test_runtime_versions_name_both_runtimes():
    versions = P.runtime_versions()
    assert set(versions) == {"onnxruntime", "openvino"} and all(versions.values())
