"""Top-down keypoint pre/post-processing (inference/kpt_transforms) and skeleton drawing (inference/visualize)."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from visionpack.errors import ModelInvalid
from visionpack.inference import kpt_transforms as KT
from visionpack.inference.det_transforms import window_affine
from visionpack.inference.visualize import COCO_EDGES, PALETTE_RGB, draw_skeletons, skeleton_jpeg_b64

NORM = {"type": "NormalizeImage", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}
YML = {"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}, NORM, {"type": "Permute"}]}


def spec(**kw):
    base = KT.read_spec(YML, "PP-TinyPose_128x96")
    return KT.KptSpec(**{**base.__dict__, **kw})


def gaussian(h, w, cx, cy, sigma=2.0):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


# --- box -> centre/scale ------------------------------------------------------------------------


def test_tall_box_widens_to_the_input_aspect_then_pads_by_1_25():
    c, s = KT.box_to_center_scale([[10, 20, 110, 300]], 96 / 128)
    np.testing.assert_allclose(c, [[60, 160]])
    np.testing.assert_allclose(s, [[210 * 1.25, 280 * 1.25]])  # w = 280 * 0.75 = 210
    assert c.dtype == s.dtype == np.float32


def test_wide_box_grows_taller_and_exact_aspect_is_kept():
    _, s = KT.box_to_center_scale([[0, 0, 300, 100], [0, 0, 75, 100]], 0.75)
    np.testing.assert_allclose(s, [[375, 500], [93.75, 125]])


def test_read_spec_from_a_tinypose_yml():
    sp = KT.read_spec({**YML, "flip_perm": [[1, 2], [3, 4]], "use_dark": False}, "PP-TinyPose_128x96")
    assert (sp.input_w, sp.input_h, sp.aspect) == (96, 128, 0.75)
    assert sp.flip_pairs == ((1, 2), (3, 4)) and sp.use_dark is False and sp.shift_heatmap is True
    other = KT.read_spec(YML, "HRNet-W32")
    assert other.shift_heatmap is False and other.use_dark is True and other.flip_pairs == KT.COCO_FLIP_PAIRS
    bare = KT.read_spec({"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [8, 8]}, {"type": "Permute"}]}, "x")
    np.testing.assert_array_equal(bare.alpha, [1, 1, 1])


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {"Preprocess": []},
        {"Preprocess": [NORM, {"type": "TopDownEvalAffine", "trainsize": [96, 128]}, {"type": "Permute"}]},
        {"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}, NORM]},
        {
            "Preprocess": [
                {"type": "TopDownEvalAffine", "trainsize": [96, 128]},
                {"type": "Resize"},
                {"type": "Permute"},
            ]
        },
        {"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": 96}, {"type": "Permute"}]},
        {"Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128], "use_udp": True}, {"type": "Permute"}]},
        {**YML, "flip_perm": [[1, 2, 3]]},
        {**YML, "flip_perm": [["a", "b"]]},
    ],
)
def test_bad_keypoint_ymls_are_model_errors(cfg):
    with pytest.raises(ModelInvalid):
        KT.read_spec(cfg, "PP-TinyPose_128x96")


# --- affine warp ------------------------------------------------------------------------------------


def test_crop_warps_the_window_to_the_input_and_normalises():
    img = np.zeros((400, 300, 3), np.uint8)
    img[150:171, 50:71] = (255, 255, 255)  # a white square centred on (60, 160)
    img[20, 10] = (0, 255, 0)
    sp = spec()
    c, s = KT.box_to_center_scale([[10, 20, 110, 300]], sp.aspect)
    x = KT.crop_inputs(img, c, s, sp)
    assert x.shape == (1, 3, 128, 96) and x.dtype == np.float32
    white = (1 - 0.485) / 0.229
    assert x[0, 0, 64, 48] == pytest.approx(white, rel=1e-5)  # box centre -> input centre
    black = -0.485 / 0.229
    assert x[0, 0, 5, 5] == pytest.approx(black, rel=1e-5)
    # the same warp by hand with cv2
    trans = window_affine(c[0], float(s[0, 0]), (96, 128))
    ref = cv2.warpAffine(img, trans, (96, 128), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(
        x[0].transpose(1, 2, 0), (ref / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225], atol=1e-5
    )


def test_affine_round_trip_through_heatmap_space():
    c, s = np.float32([200.5, 100.25]), np.float32([90, 120])
    fwd = window_affine(c, float(s[0]), (24, 32))
    inv = window_affine(c, float(s[0]), (24, 32), inv=True)
    pts = np.array([[3.3, 7.1], [12, 16], [0, 0], [23, 31]])
    img_pts = pts @ inv[:, :2].T + inv[:, 2]
    np.testing.assert_allclose(img_pts @ fwd[:, :2].T + fwd[:, 2], pts, atol=1e-4)
    np.testing.assert_allclose(img_pts[1], c, atol=1e-4)  # heatmap centre -> box centre
    np.testing.assert_allclose(img_pts[2], c - s / 2, atol=1e-4)  # heatmap corner -> window corner


# --- decoding -----------------------------------------------------------------------------------


def test_dark_recovers_a_sub_pixel_peak_that_argmax_misses():
    hm = gaussian(32, 24, 10.3, 14.7)[None, None]
    coords, vals = KT.max_preds(hm)
    np.testing.assert_array_equal(coords[0, 0], [10, 15])
    refined = KT.dark_refine(hm, coords)
    assert abs(refined[0, 0, 0] - 10.3) < 0.05 and abs(refined[0, 0, 1] - 14.7) < 0.05
    shifted = KT.quarter_shift(hm, coords)
    np.testing.assert_allclose(shifted[0, 0], [10.25, 14.75])


def test_dark_and_shift_leave_border_peaks_alone():
    hm = gaussian(32, 24, 1.0, 30.0)[None, None]
    coords, _ = KT.max_preds(hm)
    np.testing.assert_array_equal(KT.dark_refine(hm, coords), coords)
    np.testing.assert_array_equal(KT.quarter_shift(hm, coords), coords)


def test_quarter_shift_moves_toward_the_higher_neighbour():
    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 4, 4] = 1.0
    hm[0, 0, 4, 3] = 0.5  # left neighbour higher than right -> -0.25 in x
    hm[0, 0, 5, 4] = 0.5  # lower neighbour higher -> +0.25 in y
    coords, _ = KT.max_preds(hm)
    np.testing.assert_allclose(KT.quarter_shift(hm, coords)[0, 0], [3.75, 4.25])


def test_non_positive_peaks_report_the_origin_and_zero_maps_stay_finite():
    hm = np.zeros((1, 2, 32, 24), np.float32)
    hm[0, 1] = -1.0
    hm[0, 1, 10, 10] = -0.5
    coords, vals = KT.max_preds(hm)
    np.testing.assert_array_equal(coords[0], [[0, 0], [0, 0]])
    np.testing.assert_allclose(vals[0], [0, -0.5])
    kpts, score = KT.decode(hm, np.float32([[50, 50]]), np.float32([[75, 100]]))
    assert np.isfinite(kpts).all() and score[0] == pytest.approx(-0.25)


def test_decode_maps_heatmap_cells_to_image_pixels_and_scores_by_mean():
    n, k = 2, 17
    hm = np.zeros((n, k, 32, 24), np.float32)
    for j in range(k):
        hm[0, j] = gaussian(32, 24, 12, 16) * (0.5 + j / 40)
        hm[1, j] = gaussian(32, 24, 6, 8)
    centers = np.float32([[60, 160], [300, 50]])
    scales = np.float32([[262.5, 350], [75, 100]])
    kpts, scores = KT.decode(hm, centers, scales)
    assert kpts.shape == (2, 17, 3) and kpts.dtype == np.float32
    np.testing.assert_allclose(kpts[0, :, :2], np.tile([60, 160], (17, 1)), atol=1e-3)  # centre cell -> centre
    # cell (6, 8) is a quarter of the way in: 300 - 75/4, 50 - 100/4
    np.testing.assert_allclose(kpts[1, :, :2], np.tile([300 - 18.75, 50 - 25], (17, 1)), atol=1e-3)
    np.testing.assert_allclose(kpts[0, :, 2], [0.5 + j / 40 for j in range(17)], rtol=1e-6)
    assert scores[0] == pytest.approx(np.mean([0.5 + j / 40 for j in range(17)]), rel=1e-6)


def test_decode_without_dark_uses_the_quarter_shift():
    hm = gaussian(32, 24, 10.3, 14.7)[None, None]
    c, s = np.float32([[12, 16]]), np.float32([[24, 32]])  # heatmap cell == image pixel
    with_dark, _ = KT.decode(hm, c, s, use_dark=True)
    without, _ = KT.decode(hm, c, s, use_dark=False)
    np.testing.assert_allclose(without[0, 0, :2], [10.25, 14.75], atol=1e-4)
    np.testing.assert_allclose(with_dark[0, 0, :2], [10.3, 14.7], atol=0.05)


def test_decode_rejects_non_heatmap_shapes():
    with pytest.raises(ModelInvalid):
        KT.decode(np.zeros((2, 17, 32)), np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ModelInvalid):
        KT.keypoint_heatmaps([np.zeros((3, 17, 32, 24))], 2)
    with pytest.raises(ModelInvalid):
        KT.keypoint_heatmaps([], 2)
    hm = np.zeros((2, 17, 32, 24), np.float64)
    assert KT.keypoint_heatmaps([hm, np.zeros((2, 17))], 2).dtype == np.float32


# --- flip test -----------------------------------------------------------------------------------


def test_flip_back_reverses_width_and_swaps_left_right():
    rng = np.random.default_rng(0)
    plain = rng.random((2, 17, 32, 24), dtype=np.float32)
    # What an exactly mirror-equivariant model returns for the W-flipped crops:
    perm = list(range(17))
    for a, b in KT.COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    flipped = plain[:, perm][:, :, :, ::-1]
    np.testing.assert_array_equal(KT.flip_back(flipped, KT.COCO_FLIP_PAIRS, shift=False), plain)
    shifted = KT.flip_back(flipped, KT.COCO_FLIP_PAIRS, shift=True)
    np.testing.assert_array_equal(shifted[..., 1:], plain[..., :-1])  # one cell to the right
    np.testing.assert_array_equal(shifted[..., 0], plain[..., 0])  # first column kept
    assert flipped[0, 1, 0, 0] == plain[0, 2, 0, -1]  # the input is not modified


def test_merge_flip_averages_with_the_flipped_back_maps():
    sp = spec(shift_heatmap=False)
    plain = np.zeros((1, 17, 32, 24), np.float32)
    plain[0, 1] = gaussian(32, 24, 8, 10)
    plain[0, 2] = gaussian(32, 24, 15, 10)
    perm = list(range(17))
    for a, b in KT.COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    merged = KT.merge_flip(plain, plain[:, perm][:, :, :, ::-1], sp)
    np.testing.assert_allclose(merged, plain, atol=1e-7)


def test_flip_pairs_that_do_not_fit_the_model_are_a_model_error():
    with pytest.raises(ModelInvalid):
        KT.merge_flip(np.zeros((1, 16, 8, 6), np.float32), np.zeros((1, 16, 8, 6), np.float32), spec())


# --- visualisation --------------------------------------------------------------------------------


def test_skeleton_draws_confident_points_and_limbs_only():
    img = np.zeros((100, 100, 3), np.uint8)
    k = np.zeros((17, 3), np.float32)
    k[:, :2] = [[10 + 4 * j, 10 + 4 * j] for j in range(17)]
    k[:, 2] = 0.9
    k[16] = [90, 20, 0.05]  # below visual_thresh: not drawn
    out = draw_skeletons(img, [k])
    assert not img.any()  # the input stays untouched
    assert out[10, 10].any()  # nose dot
    assert not out[20, 90].any()  # low-score ankle
    # limb 5-11 (shoulder-hip) passes through the midpoint between the two joints
    mid = ((k[5, :2] + k[11, :2]) / 2).astype(int)
    assert out[mid[1], mid[0]].any()
    assert len(COCO_EDGES) == 17
    only_nose = k.copy()
    only_nose[1:, 2] = 0.0
    dot = draw_skeletons(img, [only_nose])
    assert tuple(dot[10, 10]) == PALETTE_RGB[0] == (0, 0, 255)  # PaddleX's first colour, seen as RGB
    assert tuple(dot[10, 12]) == (0, 0, 255) and not dot[10, 13].any()  # radius 2


def test_skeleton_of_no_persons_is_the_image_and_jpeg_decodes():
    img = np.full((40, 60, 3), 90, np.uint8)
    np.testing.assert_array_equal(draw_skeletons(img, []), img)
    data = base64.b64decode(skeleton_jpeg_b64(img, []))
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert data[:2] == b"\xff\xd8" and dec.shape == (40, 60, 3)


def test_skeleton_limbs_off_the_image_are_clipped_not_fatal():
    img = np.zeros((50, 50, 3), np.uint8)
    off = np.tile(np.float32([[-80, -60, 0.9]]), (17, 1))
    part = off.copy()
    part[5] = [10, 10, 0.9]  # shoulder inside, hip (11) far outside: the limb enters the image
    out = draw_skeletons(img, [off, part])
    assert out.shape == img.shape and out[10, 10].any()
    assert not draw_skeletons(img, [off]).any()
