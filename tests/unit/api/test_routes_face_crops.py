"""``/<deploy>/FaceGallery/crops``: the stored aligned crops of gallery faces (the console's
thumbnails), in the gallery scope like ``list``; every error answered in the envelope."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from tests.unit.face_fakes import GREEN, RED, b64, face_config, factory, picture
from visionpack.access import store
from visionpack.api.app import create_app
from visionpack.services import face_api

CROPS = "/demo-face/FaceGallery/crops"
LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


@pytest.fixture
def client(tmp_path):
    return create_app(face_config(tmp_path), engine_factory=factory(), gate=None).test_client()


def post(client, path, body, env=LOCAL, headers=None):
    r = client.post(
        path, data=json.dumps(body), content_type="application/json", environ_base=env, headers=headers or {}
    )
    return r.status_code, r.get_json()


def enrol(client, index=None):
    body = {
        "imageLabelPairs": [{"image": b64(picture(c)), "label": lab} for c, lab in ((RED, "red"), (GREEN, "green"))]
    }
    if index is None:
        status, res = post(client, "/face-recognition-index-add", body)
        assert status == 200, res
        return "default", sorted(int(i) for i in res["result"]["idMap"])
    status, res = post(client, "/face-recognition-index-build", body)
    assert status == 200, res
    return res["result"]["indexKey"], sorted(int(i) for i in res["result"]["idMap"])


def test_crops_are_the_stored_chips_as_png(client):
    key, ids = enrol(client, index="new")
    status, body = post(client, CROPS, {"group_id": key, "face_ids": [*ids, 999]})
    assert status == 200 and "error_code" not in body, body
    res = body["result"]
    assert res["group_id"] == key and res["missing"] == [999]
    assert [c["face_id"] for c in res["crops"]] == ids
    for c in res["crops"]:
        png = base64.b64decode(c["image"], validate=True)
        assert png.startswith(b"\x89PNG")
        chip = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        assert chip is not None and chip.shape[0] > 0
    # Red's chip is red, green's green: each crop is its own face's.
    reds = [
        cv2.imdecode(np.frombuffer(base64.b64decode(c["image"]), np.uint8), cv2.IMREAD_COLOR)[..., 2].mean()
        for c in res["crops"]
    ]
    assert reds[0] > reds[1]


def test_without_group_id_the_default_index(client):
    _key, ids = enrol(client)
    status, body = post(client, CROPS, {"face_ids": ids[:1]})
    assert status == 200 and body["result"]["group_id"] == "default" and len(body["result"]["crops"]) == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, 336006),
        ({"face_ids": []}, 336001),
        ({"face_ids": [-1]}, 336001),
        ({"face_ids": ["1"]}, 336001),
        ({"face_ids": [True]}, 336001),
        ({"face_ids": list(range(face_api.MAX_CROPS + 1))}, 336001),
        ({"face_ids": [2**70]}, 336001),
        ({"face_ids": [0], "group_id": "no-such-index"}, 336001),
        ({"face_ids": [0], "group_id": 7}, 336001),
    ],
)
def test_bad_requests_get_their_code(client, body, code):
    status, answer = post(client, CROPS, body)
    assert (status, answer["error_code"]) == (200, code), answer


def test_crops_belong_to_the_gallery_scope(client, tmp_path):
    _key, ids = enrol(client)
    status, body = post(client, CROPS, {"face_ids": ids}, env=REMOTE)
    assert (status, body["error_code"]) == (401, 110)
    infer, _ = store.create_key(tmp_path / "data", ("infer",))
    assert post(client, CROPS, {"face_ids": ids}, env=REMOTE, headers={"X-API-Key": infer})[1]["error_code"] == 6
    gallery, _ = store.create_key(tmp_path / "data", ("gallery",))
    status, body = post(client, CROPS, {"face_ids": ids}, env=REMOTE, headers={"X-API-Key": gallery})
    assert status == 200 and len(body["result"]["crops"]) == 2
