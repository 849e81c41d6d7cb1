"""Ultralytics' letterbox, confidence filter, NMS and scale-back (services/pose/yolo_boxes.py), on hand-built
tensors whose answers are worked out by hand from Ultralytics' formulas."""

from __future__ import annotations

import numpy as np
import pytest

from visionpack.services.pose import yolo_boxes as YB


def rows(*boxes):
    """Candidate rows [x1, y1, x2, y2, score, cls] (no keypoints)."""
    return np.array(boxes, np.float32).reshape(-1, 6)


def test_letterbox_keeps_the_aspect_and_splits_the_padding_with_the_odd_pixel_below():
    img = np.full((50, 128, 3), 200, np.uint8)
    x, box = YB.letterbox(img, (64, 64))
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    assert box.gain == 0.5 and box.resized == (64, 25)
    # dh = (64 - 25) / 2 = 19.5: top round(19.4) = 19, bottom round(19.6) = 20
    assert box.padding() == (19, 20, 0, 0) and box.pad_back() == (0, 19)
    assert np.all(x[:, :19] == np.float32(114) / np.float32(255))
    assert np.all(x[:, 19:44] == np.float32(200) / np.float32(255))
    assert np.all(x[:, 44:] == np.float32(114) / np.float32(255))


def test_letterbox_rounds_half_to_even_as_python_does_and_never_below_one_pixel():
    assert YB.Letterbox(65, 128, 64, 64).resized == (64, 32)  # 32.5 -> 32
    assert YB.Letterbox(67, 128, 64, 64).resized == (64, 34)  # 33.5 -> 34
    assert YB.Letterbox(1, 1000, 64, 64).resized == (64, 1)
    x, _ = YB.letterbox(np.zeros((1, 1000, 3), np.uint8), (64, 64))
    assert x.shape == (3, 64, 64)


def test_an_image_of_the_input_size_is_not_resized_and_a_non_square_input_is_served():
    img = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    x, box = YB.letterbox(img, (64, 96))
    assert box.padding() == (0, 0, 0, 0)
    assert np.array_equal(x, img.transpose(2, 0, 1).astype(np.float32) / np.float32(255))


def test_upscaling_a_small_image():
    x, box = YB.letterbox(np.zeros((8, 16, 3), np.uint8), (64, 64))
    assert box.gain == 4.0 and box.resized == (64, 32) and box.padding() == (16, 16, 0, 0)


def test_candidates_keep_scores_strictly_above_conf_and_turn_xywh_into_xyxy():
    raw = np.zeros((4 + 2 + 2, 3), np.float32)  # 2 classes, 1 keypoint (x, y)
    raw[:4, 0] = [10, 20, 4, 6]
    raw[4:6, 0] = [0.1, 0.6]
    raw[6:, 0] = [7, 8]
    raw[4, 1] = 0.25  # exactly conf: dropped (strict)
    raw[4, 2] = np.float32(0.25) + np.float32(1e-7)
    out = YB.candidates(raw, nc=2, conf=0.25)
    assert len(out) == 2
    assert out[0].tolist() == pytest.approx([8, 17, 12, 23, 0.6, 1, 7, 8])
    assert out[1][5] == 0


def test_nms_suppresses_iou_above_the_threshold_only():
    kept = YB.nms(rows([0, 0, 10, 10, 0.9, 0], [0, 0, 10, 7, 0.8, 0]), 0.7, 300)  # IoU exactly 0.7
    assert len(kept) == 2
    kept = YB.nms(rows([0, 0, 10, 10, 0.9, 0], [0, 0, 10, 7.1, 0.8, 0]), 0.7, 300)  # 0.71
    assert kept.tolist() == rows([0, 0, 10, 10, 0.9, 0]).tolist()
    assert len(YB.nms(rows([0, 0, 10, 10, 0.9, 0], [0, 0, 10, 7.1, 0.8, 0]), 0.75, 300)) == 2


def test_nms_orders_best_first_keeps_ties_in_anchor_order_and_stops_at_max_det():
    many = rows(*[[20 * i, 0, 20 * i + 10, 10, 0.5, 0] for i in range(5)], [200, 0, 210, 10, 0.9, 0])
    kept = YB.nms(many, 0.7, 3)
    assert kept[:, 0].tolist() == [200, 0, 20]
    tie = YB.nms(rows([0, 0, 10, 10, 0.5, 0], [1, 0, 11, 10, 0.5, 0]), 0.7, 300)
    assert tie[:, 0].tolist() == [0]


def test_classes_are_kept_apart_unless_agnostic():
    two = rows([0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 1])
    assert len(YB.nms(two, 0.7, 300)) == 2
    assert len(YB.nms(two, 0.7, 300, agnostic=True)) == 1


def test_at_most_max_nms_candidates_reach_nms(monkeypatch):
    monkeypatch.setattr(YB, "MAX_NMS", 2)
    kept = YB.nms(rows(*[[20 * i, 0, 20 * i + 10, 10, 0.1 * i, 0] for i in range(1, 5)]), 0.7, 300)
    assert kept[:, 4].tolist() == pytest.approx([0.4, 0.3])


def test_nms_of_nothing_and_of_degenerate_boxes():
    assert len(YB.nms(rows(), 0.7, 300)) == 0
    flat = rows([5, 5, 5, 5, 0.9, 0], [5, 5, 5, 5, 0.8, 0])  # zero area: IoU is nan, nothing suppressed
    assert len(YB.nms(flat, 0.7, 300)) == 2


def test_scale_back_subtracts_the_padding_divides_by_the_gain_and_clips():
    box = YB.Letterbox(50, 128, 64, 64)  # gain 0.5, pad_y 19
    r = np.array([[-4, 19, 30, 70, 0.9, 0, 10, 29, 0.5, 70, 100, 0.25]], np.float32)
    boxes, kpts = YB.scale_back(r, (2, 3), box)
    assert boxes.tolist() == [[0, 0, 60, 50]]
    assert kpts.tolist() == [[[20, 20, 0.5], [128, 50, 0.25]]]  # conf reported raw


def test_scale_back_of_two_dimensional_keypoints():
    box = YB.Letterbox(64, 64, 64, 64)
    r = np.array([[1, 2, 3, 4, 0.9, 0, 5, 6, 7, 8]], np.float32)
    _, kpts = YB.scale_back(r, (2, 2), box)
    assert kpts.tolist() == [[[5, 6], [7, 8]]]


def test_scale_back_divides_each_axis_by_its_own_rounded_ratio():
    box = YB.Letterbox(240, 500, 640, 640)  # gain 1.28: 500 -> 640, 240 -> round(307.2) = 307
    assert box.resized == (640, 307) and box.pad_back() == (0, 166)
    assert box.gains() == (640 / 500, 307 / 240)
    r = np.array([[0, 166 + 307, 640, 166, 0.9, 0]], np.float32)
    boxes, _ = YB.scale_back(r, (0, 3), box)
    assert boxes.tolist() == [[0, 240, 500, 0]]
