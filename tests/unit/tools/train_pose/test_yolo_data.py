"""The YOLO pose dataset writer (tools/train_pose/yolo_data.py): labels in Ultralytics' pose format,
images as the generator drew them, the test set refused."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO))

from tools.train_pose import scenes, yolo_data  # noqa: E402
from tools.train_pose.data import scene_seed  # noqa: E402


def test_label_lines_are_normalised_boxes_and_17_keypoints_with_visibility():
    k = np.zeros((17, 3), np.float32)
    k[0] = [50, 20, 2]
    k[5] = [40, 60, 1]  # hidden, still labelled
    p = scenes.Person(bbox=np.array([20, 10, 80, 190], np.float32), keypoints=k, area=100.0)
    (line,) = yolo_data.label_lines([p], 100, 200)
    f = line.split()
    assert len(f) == 1 + 4 + 17 * 3 and f[0] == "0"
    assert [float(v) for v in f[1:5]] == pytest.approx([0.5, 0.5, 0.6, 0.9])
    kp = np.array([float(v) for v in f[5:]]).reshape(17, 3)
    assert kp[0] == pytest.approx([0.5, 0.1, 2]) and kp[5] == pytest.approx([0.4, 0.3, 1])
    assert (kp[1:5] == 0).all()  # unlabelled: coordinates 0, v 0, as COCO (Ultralytics masks them)
    assert all(f[5 + 3 * j + 2] in ("0", "1", "2") for j in range(17))


def test_written_scene_matches_the_generator(tmp_path):
    seed = scene_seed(1, 0)
    for sub in ("images/train", "labels/train"):
        (tmp_path / sub).mkdir(parents=True)
    n = yolo_data.write_scene((str(tmp_path), "train", seed))
    img, persons = scenes.generate_scene(seed)
    assert n == len(persons)
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "images" / "train" / f"{seed}.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, img)  # lossless, RGB order kept through cv2's BGR files
    lines = (tmp_path / "labels" / "train" / f"{seed}.txt").read_text().split("\n")
    assert [ln for ln in lines if ln] == yolo_data.label_lines(persons, img.shape[1], img.shape[0])


def test_the_test_set_seed_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="test set"):
        yolo_data.build(str(tmp_path), {"train": (yolo_data.TEST_SEED, 1)})
