"""The demo bundles on real photographs: detection, alignment, same-person vs stranger margins.

Photos (package/samples/faces/README.md): Barack Obama x3 and Joe Biden (official portraits,
from the face_recognition package's test images) and Eileen Collins (scikit-image's astronaut).
The margins are printed (pytest -s) and recorded in docs/face-service.md.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionpack.config import ServiceConfig
from visionpack.inference import face_align as FA
from visionpack.inference.engine import create_engine
from visionpack.services.face import FaceService

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "package" / "samples" / "faces"
MODELS = REPO / "models"
PEOPLE = {
    "obama_1.jpg": "obama",
    "obama_2.jpg": "obama",
    "obama_3.jpg": "obama",
    "biden.jpg": "biden",
    "collins.jpg": "collins",
}


def demo_models() -> dict[str, str]:
    return {
        "detector_pnet": str(MODELS / "mtcnn_pnet"),
        "detector_rnet": str(MODELS / "mtcnn_rnet"),
        "detector_onet": str(MODELS / "mtcnn_onet"),
        "feature": str(MODELS / "dlib_resnet_face"),
    }


def rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FACES / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    missing = [m for m in demo_models().values() if not Path(m, "inference.pdiparams").exists()]
    assert not missing, f"demo bundles missing: {missing}; run tools/convert/build_models.py"
    cfg = ServiceConfig(
        deploy="demo-face", service="face", models=demo_models(), data_dir=str(tmp_path_factory.mktemp("face_data"))
    )
    return FaceService(cfg, create_engine)


@pytest.fixture(scope="module")
def vectors(svc):
    aligned, cropped = {}, {}
    for name in PEOPLE:
        img = rgb(name)
        faces = svc.detect(img)
        assert faces, name
        best = max(faces, key=lambda f: (f.box[2] - f.box[0]) * f.score)
        assert best.landmarks is not None and best.score > 0.99
        aligned[name] = svc.embed(svc.chips(img, [best]))[0]
        cropped[name] = svc.embed([FA.crop(img, best.box)])[0]
    return aligned, cropped


def margins(vecs: dict[str, np.ndarray]) -> tuple[float, float]:
    same, diff = [], []
    for a, b in itertools.combinations(PEOPLE, 2):
        s = float(vecs[a] @ vecs[b])
        (same if PEOPLE[a] == PEOPLE[b] else diff).append(s)
    return min(same), max(diff)


def test_every_sample_face_is_found_where_it_is(svc):
    # One clear face per photo, boxes on the face (checked by eye once, asserted loosely here).
    expect = {"collins.jpg": (180, 61, 268, 174), "biden.jpg": (196, 77, 325, 258)}
    for name, box in expect.items():
        best = max(svc.detect(rgb(name)), key=lambda f: f.score)
        assert np.abs(np.array(best.box) - box).max() < 12, (name, best.box)
        # Landmarks: eyes above the nose, nose above the mouth corners, left eye left of right.
        lm = best.landmarks
        assert lm[0, 0] < lm[1, 0] and max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])


def test_same_person_scores_clearly_above_strangers(vectors):
    aligned, cropped = vectors
    same_min, diff_max = margins(aligned)
    c_same, c_diff = margins(cropped)
    print(
        f"\naligned: same-person min {same_min:.3f}, different-person max {diff_max:.3f},"
        f" margin {same_min - diff_max:.3f}"
    )
    print(
        f"PaddleX crop: same-person min {c_same:.3f}, different-person max {c_diff:.3f}, margin {c_same - c_diff:.3f}"
    )
    assert same_min - diff_max > 0.05
    # The calibrated default threshold (0.9) separates them.
    assert same_min > 0.9 > diff_max
    # Alignment is why we do better than PaddleX's crop.
    assert same_min - diff_max > c_same - c_diff


def test_recognition_through_the_gallery(svc):
    faces, found = svc.new_faces(
        [(rgb("collins.jpg"), "collins"), (rgb("biden.jpg"), "biden"), (rgb("obama_1.jpg"), "obama")]
    )
    assert all(f is not None for f in found)
    key, _ = svc.gallery.build(faces)
    for name in ("obama_2.jpg", "obama_3.jpg"):
        res = svc.recognise(rgb(name), key, None, None, 5)
        best = max(res, key=lambda f: f.score)
        assert [h.label for h in best.hits] == ["obama"], name
    # Remove Obama: he becomes unknown, not the nearest stranger.
    svc.gallery.remove(key, [2])
    res = svc.recognise(rgb("obama_2.jpg"), key, None, None, 5)
    assert max(res, key=lambda f: f.score).hits == []


def test_six_faces_in_one_picture(svc):
    tiles = []
    for name in ("collins.jpg", "biden.jpg", "obama_1.jpg", "obama_2.jpg", "obama_3.jpg", "collins.jpg"):
        img = rgb(name)
        tiles.append(cv2.resize(img, (int(img.shape[1] * 360 / img.shape[0]), 360), interpolation=cv2.INTER_AREA))
    row = np.hstack(tiles)
    faces = [f for f in svc.detect(row) if f.score > 0.95 and (f.box[2] - f.box[0]) > 30]
    assert len(faces) == 6
