"""Alignment: the least-squares similarity transform, templates, the warp and PaddleX's crop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionpack.errors import ModelInvalid
from visionpack.inference import face_align as FA


def similarity(scale, angle_deg, tx, ty):
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0, 0, 0), (0.37, 23.0, 12.5, -40.0), (2.5, -170.0, 300, 7)])
def test_a_known_similarity_is_recovered_exactly(scale, angle, tx, ty):
    src = np.array([[100.0, 120], [160, 118], [131, 150], [105, 180], [158, 182]])
    m = similarity(scale, angle, tx, ty)
    got = FA.umeyama(src, apply(m, src))
    np.testing.assert_allclose(got, m, atol=1e-9)


def test_noisy_points_give_the_least_squares_fit():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    m = similarity(0.8, 10, 5, 5)
    dst = apply(m, src) + rng.normal(0, 0.5, (5, 2))
    got = FA.umeyama(src, dst)

    def sq(mat):
        return ((apply(mat, src) - dst) ** 2).sum()

    # Least squares is a minimum: nudging any parameter of the fit makes it worse.
    for eps in ((1e-3, 0, 0, 0), (0, 0.05, 0, 0), (0, 0, 0.05, 0), (0, 0, 0, -0.05)):
        s = math.hypot(got[0, 0], got[1, 0])
        a = math.degrees(math.atan2(got[1, 0], got[0, 0]))
        assert sq(got) < sq(similarity(s + eps[0], a + eps[1], got[0, 2] + eps[2], got[1, 2] + eps[3]))
    np.testing.assert_allclose(got[:, :2], m[:, :2], atol=0.01)
    np.testing.assert_allclose(got[:, 2], m[:, 2], atol=2.0)


def test_a_mirrored_face_is_fitted_with_a_rotation_not_a_reflection():
    src = np.array([[0.0, 0], [10, 0], [5, 5], [1, 10], [9, 10]])
    mirrored = src * np.array([-1, 1])
    m = FA.umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


@pytest.mark.parametrize(
    "src,dst",
    [
        (np.zeros((5, 2)), np.ones((5, 2))),  # all points coincide
        (np.ones((5, 2)), np.ones((4, 2))),  # shapes differ
        (np.ones((1, 2)), np.ones((1, 2))),  # one point fixes no rotation
    ],
)
def test_degenerate_inputs_are_refused(src, dst):
    with pytest.raises(ValueError):
        FA.umeyama(src, dst)


def test_template_from_the_manifest():
    pts = [[47.7, 47.1], [100.3, 47.1], [74.0, 76.6], [50.4, 103.0], [97.6, 103.0]]
    t = FA.template_for({"alignment": {"points": pts, "size": [150, 150]}}, (112, 112))
    assert t.size == (150, 150) and t.points.shape == (5, 2)


def test_without_a_manifest_the_arcface_template_is_scaled_to_the_input():
    t = FA.template_for({}, (224, 224))
    np.testing.assert_allclose(t.points, FA.ARCFACE_112 * 2)
    assert t.size == (224, 224)


@pytest.mark.parametrize(
    "al",
    [
        {"points": [[1, 2]] * 4, "size": [150, 150]},
        {"points": [[1, 2]] * 5, "size": [4, 4]},
        {"size": [150, 150]},
        {"points": "x", "size": [150, 150]},
    ],
)
def test_bad_manifest_templates_are_model_errors(al):
    with pytest.raises(ModelInvalid):
        FA.template_for({"alignment": al}, (112, 112))


def test_align_moves_the_landmarks_onto_the_template():
    # Draw five dots, rotate/scale the picture, then align: the dots land on the template.
    import cv2

    t = FA.template_for({}, (112, 112))
    big = np.zeros((400, 400, 3), np.uint8)
    m = similarity(2.2, 30, 140, 20)
    marks = apply(m, t.points)
    for x, y in marks:
        cv2.circle(big, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    chip = FA.align(big, marks, t)
    assert chip.shape == (112, 112, 3)
    for x, y in t.points:
        assert chip[int(round(y)), int(round(x))].max() > 100
    assert chip.sum() < big.sum()  # only the region around the face came along


def test_crop_is_paddlex_int_truncation_clipped_to_the_image():
    img = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    c = FA.crop(img, [10.9, 20.2, 30.7, 60.99])
    assert c.shape == (40, 20, 3)
    np.testing.assert_array_equal(c, img[20:60, 10:30])
    assert FA.crop(img, [-5, -5, 500, 500]).shape == (100, 80, 3)
    assert FA.crop(img, [50, 50, 50, 70]) is None


def test_chip_prefers_landmarks_and_falls_back_to_the_box():
    t = FA.template_for({}, (112, 112))
    img = np.full((200, 200, 3), 50, np.uint8)
    assert FA.chip(img, [10, 10, 60, 90], t.points + 30, t).shape == (112, 112, 3)
    assert FA.chip(img, [10, 10, 60, 90], None, t).shape == (80, 50, 3)
    # All landmarks on one spot: not a face geometry; the box is used instead.
    assert FA.chip(img, [10, 10, 60, 90], np.ones((5, 2)), t).shape == (80, 50, 3)
