"""Deleting an index key over the API (both dialects) and the key cap, with the fake face networks."""

from __future__ import annotations

import json

import pytest

from tests.unit.face_fakes import GREEN, RED, b64, face_config, factory, picture
from visionpack.api.app import create_app
from visionpack.gallery import open_store

DEPLOY = "demo-face"


def make(tmp_path, **options):
    cfg = face_config(tmp_path, options={"rec_threshold": 0.9, **options})
    return cfg, create_app(cfg, engine_factory=factory(), gate=None).test_client()


def px(client, op, body):
    r = client.post(f"/face-recognition-{op}", data=json.dumps(body), content_type="application/json")
    return r.status_code, r.get_json()


def ez(client, op, body):
    r = client.post(f"/{DEPLOY}/{op}", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200
    return r.get_json()


def pair(colour, label):
    return {"image": b64(picture(colour)), "label": label}


def test_paddlex_delete_removes_the_key_which_remove_of_all_ids_does_not(tmp_path):
    cfg, client = make(tmp_path)
    _, body = px(client, "index-build", {"imageLabelPairs": [pair(RED, "a"), pair(GREEN, "b")]})
    key = body["result"]["indexKey"]
    _, body = px(client, "index-remove", {"indexKey": key, "ids": [0, 1]})
    assert body["result"]["idMap"] == {}
    assert key in open_store(cfg.gallery, cfg.data_dir).index_keys()  # the old way leaves the key
    status, body = px(client, "index-delete", {"indexKey": key})
    assert status == 200 and body["errorCode"] == 0
    assert body["result"] == {"indexKey": key, "removedFaces": 0}
    assert key not in open_store(cfg.gallery, cfg.data_dir).index_keys()
    status, body = px(client, "infer", {"image": b64(picture(RED)), "indexKey": key})
    assert status == 422 and "unknown indexKey" in body["errorMsg"]


def test_easydl_group_delete_and_the_default_group_is_emptied(tmp_path):
    cfg, client = make(tmp_path)
    ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "alice", "group_id": "staff"})
    ez(client, "FaceGallery/add", {"image": b64(picture(GREEN)), "user_id": "bob"})
    out = ez(client, "FaceGallery/group/delete", {"group_id": "staff"})
    assert out["result"] == {"group_id": "staff", "removed_faces": 1} and isinstance(out["log_id"], int)
    assert ez(client, "FaceGallery/list", {})["result"]["group_id_list"] == ["default"]
    out = ez(client, "FaceGallery/group/delete", {"group_id": "default"})
    assert out["result"] == {"group_id": "default", "removed_faces": 1}
    listing = ez(client, "FaceGallery/list", {})["result"]
    assert listing["group_id_list"] == ["default"] and listing["face_num"] == 0
    # Searching without a group still works: the default index is there, empty.
    out = ez(client, "FaceRecognition", {"image": b64(picture(GREEN))})
    assert out["result"]["face_list"][0]["user_list"] == []


@pytest.mark.parametrize(
    "body,easydl,status",
    [
        ({}, 336006, 422),  # never the default index by omission
        ({"K": ""}, 336006, 422),
        ({"K": None}, 336006, 422),
        ({"K": 5}, 336001, 422),
        ({"K": "x" * 129}, 336001, 422),
        ({"K": "ghost"}, 336001, 422),
        ({"K": ["default"]}, 336001, 422),
    ],
)
def test_delete_errors(tmp_path, body, easydl, status):
    _, client = make(tmp_path)
    ez_body = {("group_id" if k == "K" else k): v for k, v in body.items()}
    px_body = {("indexKey" if k == "K" else k): v for k, v in body.items()}
    assert ez(client, "FaceGallery/group/delete", ez_body)["error_code"] == easydl
    code, out = px(client, "index-delete", px_body)
    assert code == status and out["errorCode"] == status and len(out["errorMsg"]) < 200


def test_the_index_key_cap_is_an_option_with_a_clear_error(tmp_path):
    _, client = make(tmp_path, max_index_keys=2)  # "default" + one more
    status, body = px(client, "index-build", {"imageLabelPairs": [pair(RED, "a")]})
    assert status == 200
    key = body["result"]["indexKey"]
    status, body = px(client, "index-build", {"imageLabelPairs": [pair(RED, "a")]})
    assert status == 422 and "max_index_keys" in body["errorMsg"]
    out = ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "u", "group_id": "new"})
    assert out["error_code"] == 336001
    assert ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "u", "group_id": key})["result"]
    px(client, "index-delete", {"indexKey": key})
    assert ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "u", "group_id": "new"})["result"]


@pytest.mark.parametrize("value", [0, -1, True, "5", 1.5])
def test_the_cap_option_is_checked_at_start(tmp_path, value):
    from visionpack.errors import ConfigInvalid

    with pytest.raises(ConfigInvalid, match="max_index_keys"):
        make(tmp_path, max_index_keys=value)
