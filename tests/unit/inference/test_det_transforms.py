"""PaddleX detection pre/post-processing on hand-computed cases (inference/det_transforms, det_postprocess)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionpack.errors import ModelInvalid
from visionpack.inference import det_postprocess as DP
from visionpack.inference.det_transforms import DetPreprocessor, build_ops, normalize_params, window_affine

NORM = {"type": "NormalizeImage", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}


def run(ops, img):
    pre = DetPreprocessor(build_ops(ops), ["image", "scale_factor", "im_shape"])
    return pre.sample(img)


def ramp(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


# --- Resize -------------------------------------------------------------------------------


def test_resize_without_keep_ratio_stretches_and_reports_h_w_scale():
    img = ramp(100, 200)
    s = run([{"type": "Resize", "target_size": [320, 480], "keep_ratio": False, "interp": 2}], img)
    assert s.img.shape == (320, 480, 3)  # target_size is [h, w]
    assert s.scale == (480 / 200, 320 / 100)
    np.testing.assert_array_equal(s.img, cv2.resize(img, (480, 320), interpolation=cv2.INTER_CUBIC))
    feeds = DetPreprocessor(
        build_ops([{"type": "Resize", "target_size": [320, 480], "interp": 2}, {"type": "Permute"}]),
        ["image", "scale_factor"],
    )(img)
    np.testing.assert_array_equal(feeds["scale_factor"], np.array([[3.2, 2.4]], np.float32))  # [h_scale, w_scale]


@pytest.mark.parametrize(
    "hw,target,expect_wh",
    [
        ((100, 200), [320, 640], (640, 320)),  # min(640/200, 320/100) = 3.2
        ((100, 200), [300, 500], (500, 250)),  # min(500/200, 300/100) = 2.5
        ((200, 100), [300, 500], (250, 500)),  # orientation does not matter: long side vs long target
        ((100, 333), [512, 512], (512, 154)),  # 153.75 rounds to 154
    ],
)
def test_resize_keep_ratio_fits_long_and_short_sides(hw, target, expect_wh):
    s = run([{"type": "Resize", "target_size": target, "keep_ratio": True, "interp": 1}], ramp(*hw))
    assert (s.img.shape[1], s.img.shape[0]) == expect_wh
    assert s.size == expect_wh
    assert s.scale == (expect_wh[0] / hw[1], expect_wh[1] / hw[0])


@pytest.mark.parametrize(
    "interp,code",
    [
        (0, cv2.INTER_NEAREST),
        (1, cv2.INTER_LINEAR),
        (2, cv2.INTER_CUBIC),
        (3, cv2.INTER_AREA),
        (4, cv2.INTER_LANCZOS4),
        ("LINEAR", cv2.INTER_LINEAR),
    ],
)
def test_resize_interp_ints_map_to_cv2_codes(interp, code):
    img = ramp(37, 53)
    s = run([{"type": "Resize", "target_size": [64, 64], "interp": interp}], img)
    np.testing.assert_array_equal(s.img, cv2.resize(img, (64, 64), interpolation=code))


def test_resize_to_the_same_size_is_a_no_op():
    img = ramp(64, 64)
    s = run([{"type": "Resize", "target_size": [64, 64]}], img)
    assert s.img is img and s.scale == (1.0, 1.0)


# --- NormalizeImage / Permute --------------------------------------------------------------


def test_normalize_is_scale_mean_std_by_hand():
    img = np.array([[[255, 0, 127]]], np.uint8)
    s = run([NORM], img)
    expect = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (127 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(s.img[0, 0], expect, rtol=1e-6)
    assert s.img.dtype == np.float32


def test_normalize_without_scale_uses_raw_pixels():
    img = np.array([[[123, 117, 104]], [[250, 0, 10]]], np.uint8)
    s = run([{"type": "NormalizeImage", "is_scale": False, "mean": [123, 117, 104], "std": [127.5, 127.5, 127.5]}], img)
    np.testing.assert_allclose(s.img[0, 0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(s.img[1, 0], [(250 - 123) / 127.5, -117 / 127.5, -94 / 127.5], rtol=1e-6)


def test_normalize_norm_type_none_still_means_mean_std_other_types_only_scale():
    alpha, beta = normalize_params({"norm_type": "none", "mean": [0.5] * 3, "std": [0.5] * 3})
    np.testing.assert_allclose(alpha, [2 / 255] * 3, rtol=1e-6)
    np.testing.assert_allclose(beta, [-1] * 3)
    alpha, beta = normalize_params({"norm_type": "minmax", "mean": [0.5] * 3, "std": [0.5] * 3})
    np.testing.assert_allclose(alpha, [1 / 255] * 3, rtol=1e-6)
    np.testing.assert_array_equal(beta, [0, 0, 0])
    alpha, beta = normalize_params({"mean": 0.5, "std": 0.25})  # scalars broadcast to 3 channels
    np.testing.assert_allclose(alpha, [4 / 255] * 3, rtol=1e-6)


@pytest.mark.parametrize("args", [{"mean": [1, 2]}, {"std": [1, 0, 1]}, {"mean": ["a", "b", "c"]}])
def test_normalize_bad_mean_std_is_a_model_error(args):
    with pytest.raises(ModelInvalid):
        normalize_params(args)


def test_permute_is_hwc_to_chw():
    img = ramp(5, 7)
    s = run([{"type": "Permute"}], img)
    assert s.img.shape == (3, 5, 7)
    np.testing.assert_array_equal(s.img[1], img[:, :, 1])


# --- Pad / PadStride / WarpAffine ---------------------------------------------------------------


def test_pad_places_image_top_left_on_a_filled_canvas():
    img = np.full((3, 4, 3), 10, np.uint8)
    s = run([{"type": "Pad", "size": [6, 5], "fill_value": [1, 2, 3]}], img)
    assert s.img.shape == (6, 5, 3)
    np.testing.assert_array_equal(s.img[:3, :4], 10)
    np.testing.assert_array_equal(s.img[5, 4], [1, 2, 3])
    np.testing.assert_array_equal(s.img[0, 4], [1, 2, 3])
    assert s.size == (4, 3)  # im_shape stays the pre-pad size, as PaddleX feeds it


def test_pad_defaults_and_exact_size():
    s = run([{"type": "Pad"}], np.zeros((10, 10, 3), np.uint8))
    assert s.img.shape == (640, 640, 3) and s.img[-1, -1, 0] == np.float32(127.5)
    img = np.zeros((8, 8, 3), np.uint8)
    assert run([{"type": "Pad", "size": 8}], img).img is img


def test_pad_smaller_than_the_image_is_a_model_error():
    with pytest.raises(ModelInvalid):
        run([{"type": "Pad", "size": [4, 4]}], np.zeros((10, 10, 3), np.uint8))


def test_pad_stride_zero_pads_chw_to_a_multiple():
    img = ramp(100, 70)
    s = run([{"type": "Permute"}, {"type": "PadStride", "stride": 32}], img)
    assert s.img.shape == (3, 128, 96)
    np.testing.assert_array_equal(s.img[:, :100, :70], img.transpose(2, 0, 1))
    assert not s.img[:, 100:].any() and not s.img[:, :, 70:].any()
    s0 = run([{"type": "Permute"}, {"type": "PadStride", "stride": 0}], img)
    assert s0.img.shape == (3, 100, 70)


def test_warp_affine_keep_res_translates_into_a_padded_canvas_in_bgr():
    img = ramp(100, 70)
    s = run([{"type": "WarpAffine", "keep_res": True}], img)
    # (100|31)+1 = 128, (70|31)+1 = 96; centre (35, 50) -> (48, 64): a shift of (13, 14)
    assert s.img.shape == (128, 96, 3)
    np.testing.assert_array_equal(s.img[14:114, 13:83], img[:, :, ::-1])


def test_warp_affine_fixed_size_fits_the_long_side():
    img = ramp(50, 100)
    s = run([{"type": "WarpAffine", "keep_res": False, "input_h": 64, "input_w": 64}], img)
    assert s.img.shape == (64, 64, 3)


def test_window_affine_round_trip_is_identity():
    fwd = window_affine((60.0, 160.0), 262.5, (96, 128))
    inv = window_affine((60.0, 160.0), 262.5, (96, 128), inv=True)
    pts = np.array([[60, 160], [0, 0], [123.4, 56.7]], np.float64)
    there = pts @ fwd[:, :2].T + fwd[:, 2]
    back = there @ inv[:, :2].T + inv[:, 2]
    np.testing.assert_allclose(back, pts, atol=1e-3)
    np.testing.assert_allclose(there[0], [48, 64], atol=1e-4)  # centre -> centre of the output
    # the window is 262.5 wide and 350 tall (aspect of the output); its corner -> (0, 0)
    corner = np.array([60 - 131.25, 160 - 175.0]) @ fwd[:, :2].T + fwd[:, 2]
    np.testing.assert_allclose(corner, [0, 0], atol=1e-3)


# --- feeds by name ----------------------------------------------------------------------------

PRE = [{"type": "Resize", "target_size": [320, 320], "keep_ratio": False, "interp": 2}, NORM, {"type": "Permute"}]


def test_feeds_follow_the_model_inputs_by_name():
    img = ramp(100, 200)
    two = DetPreprocessor.from_config({"Preprocess": PRE}, ["scale_factor", "image"])(img)
    assert set(two) == {"image", "scale_factor"}
    assert two["image"].shape == (1, 3, 320, 320) and two["image"].dtype == np.float32
    three = DetPreprocessor.from_config({"Preprocess": PRE}, ["im_shape", "image", "scale_factor"])(img)
    assert set(three) == {"image", "scale_factor", "im_shape"}
    np.testing.assert_array_equal(three["im_shape"], [[320, 320]])
    np.testing.assert_array_equal(three["scale_factor"], np.array([[3.2, 1.6]], np.float32))
    np.testing.assert_array_equal(three["image"], two["image"])


def test_without_resize_scale_is_one_and_im_shape_the_original():
    feeds = DetPreprocessor.from_config(
        {"Preprocess": [NORM, {"type": "Permute"}]}, ["image", "scale_factor", "im_shape"]
    )(ramp(30, 40))
    np.testing.assert_array_equal(feeds["scale_factor"], [[1, 1]])
    np.testing.assert_array_equal(feeds["im_shape"], [[30, 40]])


@pytest.mark.parametrize("names", [["x"], ["image", "scale_factor", "extra"], ["scale_factor"]])
def test_unknown_or_missing_detector_inputs_are_a_model_error(names):
    with pytest.raises(ModelInvalid):
        DetPreprocessor.from_config({"Preprocess": PRE}, names)


@pytest.mark.parametrize(
    "pre",
    [
        None,
        "Resize",
        [{"type": "Mosaic"}],
        [{"target_size": [3, 3]}],
        [{"type": "Resize", "target_size": [320, 320], "bogus": 1}],
        [{"type": "Resize", "target_size": [320, "x"]}],
        [{"type": "Resize", "target_size": [320, 320], "interp": 9}],
        [{"type": "Pad", "size": [0, 5]}],
    ],
)
def test_bad_preprocess_lists_are_model_errors(pre):
    with pytest.raises(ModelInvalid):
        DetPreprocessor.from_config({"Preprocess": pre}, ["image", "scale_factor"])


def test_preprocess_must_end_in_chw():
    pre = DetPreprocessor.from_config({"Preprocess": [NORM]}, ["image", "scale_factor"])
    with pytest.raises(ModelInvalid):
        pre(ramp(20, 20))


def test_a_batch_of_different_shapes_is_a_model_error():
    pre = DetPreprocessor.from_config({"Preprocess": [{"type": "Permute"}]}, ["image"])
    with pytest.raises(ModelInvalid):
        pre.feeds([pre.sample(ramp(20, 20)), pre.sample(ramp(20, 30))])


# --- postprocess ------------------------------------------------------------------------------

ROWS = np.array(
    [
        [0, 0.90, 10, 20, 110, 300],
        [0, 0.50, 10, 20, 110, 300],  # == threshold: dropped (strictly greater)
        [-1, 0.99, 0, 0, 50, 50],  # padding row of an empty result
        [0, 0.80, -30, -5, 700, 900],  # clipped to the 640x480 image
        [1, 0.70, 100, 100, 100, 140],  # zero width: dropped
        [0, 0.60, 650, 10, 700, 50],  # entirely right of the image: degenerate after clipping
        [5, 0.95, 1, 2, 3, 4],  # class without a label: its id as text
    ],
    np.float32,
)


def test_postprocess_filters_clips_and_labels():
    boxes = DP.postprocess(ROWS, 640, 480, 0.5, ["person", "bike"])
    assert [(b.cls_id, b.label) for b in boxes] == [(0, "person"), (0, "person"), (5, "5")]
    assert boxes[0].xyxy == [10, 20, 110, 300] and boxes[0].score == pytest.approx(0.9)
    assert boxes[1].xyxy == [0, 0, 640, 480]


def test_threshold_compares_in_float32_like_paddlex():
    rows = np.array([[0, 0.3, 0, 0, 10, 10]], np.float32)
    # float32(0.3) > 0.3 in float64, but PaddleX compares float32 to float32: not greater.
    assert DP.postprocess(rows, 20, 20, 0.3, ["p"]) == []
    assert len(DP.postprocess(rows, 20, 20, 0.29, ["p"])) == 1


def test_empty_rows_give_no_boxes():
    assert DP.postprocess(np.zeros((0, 6), np.float32), 10, 10, 0.5, ["p"]) == []


def test_split_by_counts_and_pick_outputs_in_either_order():
    rows = np.arange(18, dtype=np.float32).reshape(3, 6)
    counts = np.array([1, 0, 2], np.int32)
    parts = DP.split_by_counts(rows, counts)
    assert [len(p) for p in parts] == [1, 0, 2]
    np.testing.assert_array_equal(parts[2], rows[1:])
    a, b = DP.pick_outputs([counts, rows])
    assert a is rows or np.array_equal(a, rows)
    np.testing.assert_array_equal(b, counts)


@pytest.mark.parametrize(
    "outputs",
    [
        [np.zeros((3, 6))],
        [np.zeros((3, 4)), np.array([3])],
        [np.zeros((3, 6)), np.zeros((3, 6))],
    ],
)
def test_unexpected_detector_outputs_are_model_errors(outputs):
    with pytest.raises(ModelInvalid):
        DP.pick_outputs(outputs)


def test_counts_larger_than_rows_are_a_model_error():
    with pytest.raises(ModelInvalid):
        DP.split_by_counts(np.zeros((2, 6), np.float32), np.array([3]))


def test_whole_image_boxes_of_class_image_are_dropped_as_paddlex_does():
    rows = np.array([[0, 0.9, 0, 0, 100, 50], [1, 0.8, 10, 10, 20, 20]], np.float32)
    labels = ["image", "text"]
    assert [b.label for b in DP.postprocess(rows, 100, 50, 0.5, labels)] == ["text"]
    # only when other boxes remain, and only for a class named "image"
    assert [b.label for b in DP.postprocess(rows[:1], 100, 50, 0.5, labels)] == ["image"]
    assert len(DP.postprocess(rows, 100, 50, 0.5, ["person", "text"])) == 2


def test_labels_and_default_threshold_from_the_yml():
    assert DP.read_labels({"label_list": ["person"]}) == ("person",)
    assert DP.default_threshold({"draw_threshold": 0.4}) == 0.4
    assert DP.default_threshold({}) == 0.5
    for bad in ({}, {"label_list": []}, {"label_list": "person"}):
        with pytest.raises(ModelInvalid):
            DP.read_labels(bad)
    with pytest.raises(ModelInvalid):
        DP.default_threshold({"draw_threshold": "high"})
