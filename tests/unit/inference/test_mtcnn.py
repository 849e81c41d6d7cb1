"""MTCNN cascade logic with fake stage networks: pyramid, cells, NMS, regression, crops, plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionpack.errors import ModelInvalid
from visionpack.inference import mtcnn as M


def test_pyramid_scales_follow_min_size_and_factor():
    scales = M.pyramid_scales(100, 200)
    assert scales[0] == pytest.approx(12 / 20)
    for a, b in zip(scales, scales[1:]):
        assert b == pytest.approx(a * 0.709)
    # The last scale still leaves a 12 px short side; one more would not.
    assert 100 * scales[-1] >= 12 and 100 * scales[-1] * 0.709 < 12
    assert len(scales) == 1 + math.floor(math.log(12 / 60) / math.log(0.709))


def test_pyramid_for_an_image_smaller_than_a_min_face_is_empty():
    assert M.pyramid_scales(15, 15) == []
    assert M.pyramid_scales(40, 40, min_size=40) == [12 / 40]


@pytest.mark.parametrize("min_size,factor", [(11, 0.7), (20, 1.0), (20, 0.0)])
def test_bad_pyramid_parameters(min_size, factor):
    with pytest.raises(ValueError):
        M.pyramid_scales(100, 100, min_size, factor)


def test_cell_boxes_map_cells_back_to_image_pixels():
    prob = np.zeros((5, 6))
    prob[2, 3] = 0.9
    prob[4, 0] = 0.5  # below the threshold
    reg = np.zeros((4, 5, 6))
    reg[:, 2, 3] = [0.1, 0.2, -0.1, -0.2]
    rows = M.cell_boxes(reg, prob, scale=0.5, threshold=0.6)
    assert rows.shape == (1, 9)
    # x = 3, y = 2: [(2*3+1)/0.5, (2*2+1)/0.5, (2*3+12)/0.5, (2*2+12)/0.5], floored
    np.testing.assert_allclose(rows[0, :4], [14, 10, 36, 32])
    assert rows[0, 4] == pytest.approx(0.9)
    np.testing.assert_allclose(rows[0, 5:], [0.1, 0.2, -0.1, -0.2])
    assert M.cell_boxes(reg, prob, 0.5, 0.95).shape == (0, 9)


def test_nms_union_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    keep = M.nms(boxes, scores, 0.5)
    assert keep.tolist() == [1, 2]  # box 0 (IoU with box 1: 81/119 = 0.6807) and its duplicate 3 go
    # Above the IoU box 0 stays; its exact duplicate 3 is then removed by box 0 itself.
    assert M.nms(boxes, scores, 0.681).tolist() == [1, 0, 2]
    assert M.nms(boxes, scores, 0.680).tolist() == [1, 2]


def test_nms_min_removes_a_box_nested_in_a_bigger_one():
    big, small = [0, 0, 100, 100], [40, 40, 60, 60]
    boxes = np.array([big, small], float)
    scores = np.array([0.9, 0.8])
    assert M.nms(boxes, scores, 0.7, "union").tolist() == [0, 1]  # IoU 0.04
    assert M.nms(boxes, scores, 0.7, "min").tolist() == [0]  # overlap/smaller = 1


def test_nms_plus_one_measures_pixels_inclusively():
    # Two 10x10-pixel boxes (0..9 and 5..14 inclusive) overlap in 5x10 pixels: IoU 50/150.
    boxes = np.array([[0, 0, 9, 9], [5, 0, 14, 9.0]])
    scores = np.array([0.9, 0.8])
    assert M.nms(boxes, scores, 0.34, plus_one=True).tolist() == [0, 1]
    assert M.nms(boxes, scores, 0.33, plus_one=True).tolist() == [0]
    # Without +1 the same boxes are 9x9 with a 4x9 overlap: IoU 36/126 = 0.286.
    assert M.nms(boxes, scores, 0.29).tolist() == [0, 1] and M.nms(boxes, scores, 0.28).tolist() == [0]
    # "min" with +1: 50 / 100.
    assert M.nms(boxes, scores, 0.5, "min", plus_one=True).tolist() == [0, 1]
    assert M.nms(boxes, scores, 0.49, "min", plus_one=True).tolist() == [0]


def test_nms_edge_cases():
    assert M.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    # Zero-area boxes never divide by zero.
    assert M.nms(np.array([[5, 5, 5, 5], [5, 5, 5, 5.0]]), np.array([0.5, 0.4]), 0.5).tolist() == [0, 1]


def test_regression_moves_corners_by_fractions_of_the_size():
    boxes = np.array([[10.0, 20, 30, 60]])
    reg = np.array([[0.1, -0.1, 0.2, 0.05]])
    np.testing.assert_allclose(M.regress(boxes, reg, inclusive=False), [[12, 16, 34, 62]])
    # RNet/ONet measure size inclusively (w = x2 - x1 + 1).
    np.testing.assert_allclose(M.regress(boxes, reg, inclusive=True), [[12.1, 15.9, 34.2, 62.05]])


def test_square_grows_the_short_side_around_the_centre():
    out = M.square(np.array([[10.0, 20, 30, 60, 0.9]]))
    np.testing.assert_allclose(out[0, :4], [0, 20, 40, 60])
    assert out[0, 4] == 0.9  # extra columns ride along


def test_crops_clip_to_the_image_and_skip_empty_boxes():
    img = np.zeros((50, 40, 3), np.uint8)
    img[:, :20] = 255
    boxes = np.array([[1, 1, 20, 20], [-30, -30, 10, 10], [45, 60, 80, 90], [21, 1, 40, 50]], float)
    x, ok = M.crops(img, boxes, 24)
    assert ok.tolist() == [True, True, False, True]
    assert x.shape == (3, 3, 24, 24) and x.dtype == np.float32
    white = (255 - 127.5) * 0.0078125
    assert np.allclose(x[0], white)  # inside the white half
    assert np.allclose(x[1], white)  # clipped to [1, 1, 10, 10]: still white
    assert np.allclose(x[2], -127.5 * 0.0078125)  # the black half


def brightness_stage(kind):
    """Fake networks that call a window a face in proportion to how white it is."""

    def pnet(x):
        n, _, h, w = x.shape
        oh, ow = math.ceil((h - 2) / 2) - 4, math.ceil((w - 2) / 2) - 4
        white = (x[0].mean(axis=0) + 1) / 2  # back to [0, 1]
        prob = np.zeros((1, 2, oh, ow), np.float32)
        for y in range(oh):
            for xx in range(ow):
                prob[0, 1, y, xx] = white[2 * y : 2 * y + 12, 2 * xx : 2 * xx + 12].mean()
        prob[0, 0] = 1 - prob[0, 1]
        return {"reg": np.zeros((1, 4, oh, ow), np.float32), "prob": prob}

    def head(x):
        n = len(x)
        p = ((x.mean(axis=(1, 2, 3)) + 1) / 2).astype(np.float32)
        out = {"reg": np.zeros((n, 4), np.float32), "prob": np.stack([1 - p, p], axis=1)}
        if kind == "onet":
            # Landmarks at fixed fractions of the box: eyes at 30 %/70 % across, 35 % down...
            out["landmarks"] = np.tile(
                np.array([0.3, 0.7, 0.5, 0.35, 0.65, 0.35, 0.35, 0.55, 0.75, 0.75], np.float32), (n, 1)
            )
        return out

    return pnet if kind == "pnet" else head


def test_cascade_finds_a_white_square_with_landmarks_inside_it():
    img = np.zeros((160, 200, 3), np.uint8)
    img[40:100, 60:120] = 255
    calls = []

    def counting(stage, name):
        def run(x):
            calls.append((name, x.shape))
            return stage(x)

        return run

    c = M.Cascade(
        counting(brightness_stage("pnet"), "p"),
        counting(brightness_stage("rnet"), "r"),
        counting(brightness_stage("onet"), "o"),
        thresholds=(0.95, 0.95, 0.95),
        max_batch=4,
    )
    faces = c.detect(img)
    assert faces and all(f.score > 0.95 for f in faces)
    for f in faces:
        x1, y1, x2, y2 = f.box
        assert x1 >= 55 and x2 <= 126 and y1 >= 35 and y2 <= 106
        lx, ly = f.landmarks[:, 0], f.landmarks[:, 1]
        assert np.all((lx >= x1 - 1) & (lx <= x2)) and np.all((ly >= y1 - 1) & (ly <= y2))
    # Landmark arithmetic: x = w * frac + x1 - 1 with w = x2 - x1 + 1 of the ONet *input* box.
    assert faces[0].landmarks.shape == (5, 2)
    assert {n for n, _ in calls} == {"p", "r", "o"}
    assert all(shape[0] <= 4 for n, shape in calls if n != "p")  # batched by max_batch
    # A request threshold above every score finds nothing; the stages still ran.
    assert c.detect(img, threshold=1.01) == []


def test_cascade_on_a_blank_image_stops_after_pnet():
    seen = []
    c = M.Cascade(brightness_stage("pnet"), lambda x: seen.append("r"), lambda x: seen.append("o"))
    assert c.detect(np.zeros((64, 64, 3), np.uint8)) == []
    assert seen == []


def test_stage_from_engine_names_outputs_and_checks_their_count():
    class Engine:
        input_names = ["x"]

        def __init__(self, n):
            self.n = n

        def run(self, feeds):
            return [np.full(1, i) for i in range(self.n)]

    stage = M.stage_from_engine(Engine(2), ["reg", "prob"])
    assert {k: int(v[0]) for k, v in stage(np.zeros(1)).items()} == {"reg": 0, "prob": 1}
    with pytest.raises(ModelInvalid):
        M.stage_from_engine(Engine(3), ["reg", "prob"])(np.zeros(1))


def test_clip_box_and_area():
    assert M.clip_box(np.array([-3.0, 5, 250, 90]), 200, 100) == [0.0, 5.0, 200.0, 90.0]
    assert M.box_area([0, 0, 10, 5]) == 50 and M.box_area([5, 5, 1, 1]) == 0
