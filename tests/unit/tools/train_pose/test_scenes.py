"""The procedural pose-scene generator (tools/train_pose/scenes.py) and its top-down crop geometry."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO))

from tools.train_pose import scenes, topdown  # noqa: E402

SEEDS = range(100, 130)


@pytest.fixture(scope="module")
def generated():
    return {s: scenes.generate_scene(s) for s in SEEDS}


def test_same_seed_same_scene(generated):
    img, persons = scenes.generate_scene(SEEDS[0])
    img0, persons0 = generated[SEEDS[0]]
    assert np.array_equal(img, img0)
    assert len(persons) == len(persons0)
    for a, b in zip(persons, persons0):
        assert np.array_equal(a.bbox, b.bbox) and np.array_equal(a.keypoints, b.keypoints) and a.area == b.area


def test_different_seeds_differ(generated):
    shapes = {generated[s][0].shape for s in SEEDS}
    assert len(shapes) > 3
    a, b = generated[SEEDS[0]][0], generated[SEEDS[1]][0]
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_image_and_annotation_types(generated):
    for img, persons in generated.values():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        for p in persons:
            assert p.bbox.shape == (4,) and p.keypoints.shape == (17, 3)
            assert p.area > 0


def test_boxes_inside_image_and_non_degenerate(generated):
    for img, persons in generated.values():
        h, w = img.shape[:2]
        for p in persons:
            x1, y1, x2, y2 = p.bbox
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_labelled_keypoints_inside_their_box(generated):
    for _, persons in generated.values():
        for p in persons:
            k = p.keypoints[p.keypoints[:, 2] > 0]
            x1, y1, x2, y2 = p.bbox
            assert ((k[:, 0] >= x1 - 1) & (k[:, 0] <= x2 + 1) & (k[:, 1] >= y1 - 1) & (k[:, 1] <= y2 + 1)).all()


def test_visibility_flags_follow_coco(generated):
    flags = np.concatenate([p.keypoints[:, 2] for _, ps in generated.values() for p in ps])
    assert set(np.unique(flags)) <= {0.0, 1.0, 2.0}
    # occlusion (by objects, other figures, the figure itself) and the image border both happen
    assert (flags == 1).sum() > 0.03 * flags.size
    assert (flags == 0).sum() > 0
    assert (flags == 2).sum() > 0.5 * flags.size
    for _, ps in generated.values():
        for p in ps:
            # unlabelled keypoints are zeroed as in COCO
            assert (p.keypoints[p.keypoints[:, 2] == 0, :2] == 0).all()


def test_unlabelled_keypoints_are_outside_the_image():
    """Keypoints of a figure cut by the border are v=0 exactly where they leave the image."""
    found = 0
    for s in range(200, 260):
        img, persons = scenes.generate_scene(s)
        h, w = img.shape[:2]
        for p in persons:
            k = p.keypoints
            lab = k[k[:, 2] > 0]
            assert ((lab[:, 0] >= 0) & (lab[:, 0] < w) & (lab[:, 1] >= 0) & (lab[:, 1] < h)).all()
            found += int((k[:, 2] == 0).any())
    assert found > 0


def test_several_persons_per_scene(generated):
    counts = [len(ps) for _, ps in generated.values()]
    assert max(counts) >= 3
    assert np.mean(counts) > 1.5
    assert min(counts) >= 0


def test_varied_person_scale(generated):
    rel = [(p.bbox[3] - p.bbox[1]) / img.shape[0] for img, ps in generated.values() for p in ps]
    assert min(rel) < 0.3 and max(rel) > 0.7


def test_left_right_flip_pairs_are_coco():
    assert len(scenes.KEYPOINT_NAMES) == 17
    for a, b in scenes.FLIP_PAIRS:
        assert scenes.KEYPOINT_NAMES[a].replace("left", "right") == scenes.KEYPOINT_NAMES[b]


def test_crop_geometry_matches_paddlex_rules():
    # box 40x200 is widened to the 96:128 aspect, then padded x1.25
    center, scale = topdown.box_to_center_scale(np.array([100, 50, 140, 250], np.float32))
    assert np.allclose(center, [120, 150])
    assert np.allclose(scale, [150 * 1.25, 200 * 1.25])
    center, scale = topdown.box_to_center_scale(np.array([0, 0, 300, 100], np.float32))
    assert np.allclose(scale, [375, 500])
    # the crop maps the box centre to the crop centre and scale[0] pixels to the crop width
    trans = topdown.get_affine_transform(center, scale, 0, (96, 128))
    assert np.allclose(topdown.apply_affine(center, trans), [[48, 64]], atol=1e-3)
    inv = topdown.get_affine_transform(center, scale, 0, (96, 128), inv=True)
    p = np.array([[10.0, 20.0], [80.0, 100.0]], np.float32)
    assert np.allclose(topdown.apply_affine(topdown.apply_affine(p, trans), inv), p, atol=1e-3)


def test_dark_decode_recovers_subpixel_peak():
    center, scale = np.float32([48, 64]), np.float32([96, 128])  # crop == image: heatmap px = 4 image px
    kin = np.array([[37.3, 61.7]] + [[0.0, 0.0]] * 16, np.float32)
    w = np.zeros(17, np.float32)
    w[0] = 1
    hm = topdown.gaussian_targets(kin, w)[None]
    out = topdown.decode_heatmaps(hm, center[None], scale[None], use_dark=True)
    assert np.allclose(out[0, 0, :2], kin[0], atol=0.3)
    assert out[0, 0, 2] > 0.9
    plain = topdown.decode_heatmaps(hm, center[None], scale[None], use_dark=False)
    assert np.abs(plain[0, 0, :2] - kin[0]).max() < 4.0
