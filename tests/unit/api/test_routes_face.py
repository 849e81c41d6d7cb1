"""The HTTP contract of face recognition, both dialects, with fake networks: flows and every error."""

from __future__ import annotations

import base64
import dataclasses
import json

import numpy as np
import pytest

from tests.unit.face_fakes import BLUE, GREEN, RED, YELLOW, b64, face_config, factory, picture, write_feature
from visionpack.api.app import create_app
from visionpack.errors import ConfigInvalid, LicenseError

DEPLOY = "demo-face"


@pytest.fixture
def cfg(tmp_path):
    return face_config(tmp_path)


@pytest.fixture
def client(cfg):
    return create_app(cfg, engine_factory=factory(), gate=None).test_client()


def post(client, url, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json")


def px(client, op, body):
    r = post(client, f"/face-recognition-{op}", body)
    return r.status_code, r.get_json()


def ez(client, op, body):
    r = post(client, f"/{DEPLOY}/{op}", body)
    assert r.status_code == 200 or r.get_json().get("error_code") in (336100, 337000)
    return r.get_json()


def pairs(*items):
    return [{"image": b64(picture(c)), "label": lab} for c, lab in items]


def test_the_seed_client_flow_build_add_remove_infer(client):
    status, body = px(client, "index-build", {"imageLabelPairs": pairs((RED, "ID0"), (GREEN, "ID1"), (BLUE, "ID2"))})
    assert status == 200 and body["errorCode"] == 0 and body["errorMsg"] == "Success"
    key = body["result"]["indexKey"]
    assert body["result"]["idMap"] == {"0": "ID0", "1": "ID1", "2": "ID2"}
    status, body = px(client, "index-add", {"imageLabelPairs": pairs((BLUE, "ID2")), "indexKey": key})
    assert body["result"] == {"idMap": {"0": "ID0", "1": "ID1", "2": "ID2", "3": "ID2"}}
    status, body = px(client, "index-remove", {"ids": [1], "indexKey": key})
    assert body["result"] == {"idMap": {"0": "ID0", "2": "ID2", "3": "ID2"}}
    status, body = px(client, "infer", {"image": b64(picture(BLUE, RED, GREEN)), "indexKey": key})
    assert status == 200
    faces = body["result"]["faces"]
    assert len(faces) == 3 and set(faces[0]) == {"bbox", "recResults", "score"}
    by_x = sorted(faces, key=lambda f: f["bbox"][0])
    # Blue matches ID2 (two gallery photos, one result: labels are not repeated), red ID0,
    # and green is unknown now that ID1 was removed -- not the nearest stranger.
    assert [r["label"] for r in by_x[0]["recResults"]] == ["ID2"]
    assert by_x[0]["recResults"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert [r["label"] for r in by_x[1]["recResults"]] == ["ID0"]
    assert by_x[2]["recResults"] == []
    x1, y1, x2, y2 = by_x[0]["bbox"]
    assert 0 <= x1 <= 20 and 68 <= x2 <= 90 and 30 <= y1 <= 50 and 98 <= y2 <= 120  # around the 48 px square
    # The visualisation is on by default (the seed client writes it to a file).
    import cv2

    img = cv2.imdecode(np.frombuffer(base64.b64decode(body["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (160, 240, 3)


def test_infer_options_topk_thresholds_and_visualize(client):
    _, body = px(client, "index-build", {"imageLabelPairs": pairs((RED, "r"), (YELLOW, "y"))})
    key = body["result"]["indexKey"]
    img = b64(picture(RED))
    _, body = px(client, "infer", {"image": img, "indexKey": key, "recThreshold": 0.0, "topk": 2, "visualize": False})
    res = body["result"]
    assert "image" not in res
    assert [r["label"] for r in res["faces"][0]["recResults"]] == ["r", "y"]  # red-yellow cosine ~0.7
    _, body = px(client, "infer", {"image": img, "indexKey": key, "recThreshold": 0.0, "topk": 1})
    assert len(body["result"]["faces"][0]["recResults"]) == 1
    _, body = px(client, "infer", {"image": img, "indexKey": key, "detThreshold": 0.999})
    assert body["result"]["faces"] == []


def test_infer_without_index_key_searches_the_default_index(client):
    _, body = px(client, "infer", {"image": b64(picture(RED))})
    assert len(body["result"]["faces"]) == 1 and body["result"]["faces"][0]["recResults"] == []
    px(client, "index-add", {"imageLabelPairs": pairs((RED, "r"))})
    _, body = px(client, "infer", {"image": b64(picture(RED))})
    assert body["result"]["faces"][0]["recResults"][0]["label"] == "r"


def test_a_gallery_image_without_a_detected_face_is_used_whole(client):
    # PaddleX feeds gallery images straight to the feature model; so do we when nothing is found.
    blank = np.full((64, 64, 3), 10, np.uint8)
    status, body = px(client, "index-build", {"imageLabelPairs": [{"image": b64(blank), "label": "dark"}]})
    assert status == 200 and body["result"]["idMap"] == {"0": "dark"}


@pytest.mark.parametrize(
    "op,body,status",
    [
        ("infer", {}, 422),
        ("infer", {"image": ""}, 422),
        ("infer", {"image": "###"}, 400),
        ("infer", {"image": "http://192.0.2.1/x.jpg"}, 422),
        ("infer", {"image": "IMG", "detThreshold": "0.5"}, 422),
        ("infer", {"image": "IMG", "recThreshold": True}, 422),
        ("infer", {"image": "IMG", "topk": 0}, 422),
        ("infer", {"image": "IMG", "topk": 1.5}, 422),
        ("infer", {"image": "IMG", "visualize": "yes"}, 422),
        ("infer", {"image": "IMG", "indexKey": 5}, 422),
        ("infer", {"image": "IMG", "indexKey": "no-such-index"}, 422),
        ("index-build", {}, 422),
        ("index-build", {"imageLabelPairs": []}, 422),
        ("index-build", {"imageLabelPairs": "x"}, 422),
        ("index-build", {"imageLabelPairs": ["x"]}, 422),
        ("index-build", {"imageLabelPairs": [{"image": "IMG"}]}, 422),
        ("index-build", {"imageLabelPairs": [{"image": "IMG", "label": ""}]}, 422),
        ("index-build", {"imageLabelPairs": [{"image": "IMG", "label": 7}]}, 422),
        ("index-build", {"imageLabelPairs": [{"label": "a"}]}, 422),
        ("index-build", {"imageLabelPairs": [{"image": "R0lGODlhAQABAAAAACw=", "label": "a"}]}, 400),
        ("index-build", {"imageLabelPairs": [{"image": "IMG", "label": "a"}] * 101}, 422),
        ("index-add", {"imageLabelPairs": [{"image": "IMG", "label": "a"}], "indexKey": "nope"}, 422),
        ("index-remove", {}, 422),
        ("index-remove", {"ids": []}, 422),
        ("index-remove", {"ids": ["1"]}, 422),
        ("index-remove", {"ids": [True]}, 422),
        ("index-remove", {"ids": [1], "indexKey": "nope"}, 422),
        ("infer", "[1]", 422),
        ("infer", "{bad json", 422),
    ],
)
def test_paddlex_errors(client, op, body, status):
    small = b64(picture(RED, size=(64, 64)))
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace('"IMG"', json.dumps(small)))
    code, out = px(client, op, body)
    assert code == status and out["errorCode"] == status, out
    assert set(out) == {"logId", "errorCode", "errorMsg"}


def test_unknown_index_key_says_which(client):
    _, out = px(client, "infer", {"image": b64(picture(RED)), "indexKey": "ghost"})
    assert "ghost" in out["errorMsg"]


def test_a_failed_build_leaves_no_index_behind(client, cfg):
    ok = {"image": b64(picture(RED)), "label": "a"}
    code, _ = px(client, "index-build", {"imageLabelPairs": [ok, {"image": "###", "label": "b"}]})
    assert code == 400
    from visionpack.gallery import open_store

    assert open_store(cfg.gallery, cfg.data_dir).index_keys() == ["default"]


# --- EasyDL -----------------------------------------------------------------------------


def test_easydl_gallery_add_search_list_remove(client):
    out = ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "alice", "group_id": "staff"})
    res = out["result"]
    assert isinstance(out["log_id"], int)
    assert (
        res["face_id"] == 0 and res["group_id"] == "staff" and res["user_id"] == "alice" and res["face_found"] is True
    )
    assert set(res["location"]) == {"left", "top", "width", "height"}
    ez(client, "FaceGallery/add", {"image": b64(picture(GREEN)), "user_id": "bob", "group_id": "staff"})
    ez(client, "FaceGallery/add", {"image": b64(picture(GREEN)), "user_id": "bob", "group_id": "staff"})
    out = ez(client, "FaceRecognition", {"image": b64(picture(GREEN, RED, YELLOW)), "group_id": "staff"})
    res = out["result"]
    assert res["face_num"] == 3 and "image" not in out  # EasyDL visualisation is off by default
    users = {f["location"]["left"] // 70: [u["user_id"] for u in f["user_list"]] for f in res["face_list"]}
    assert users == {0: ["bob"], 1: ["alice"], 2: []}
    f0 = res["face_list"][0]
    assert set(f0) == {"location", "face_probability", "user_list", "landmark"} and len(f0["landmark"]) == 5
    known = next(f for f in res["face_list"] if f["user_list"])
    assert set(known["user_list"][0]) == {"group_id", "user_id", "score"}
    out = ez(
        client,
        "FaceRecognition",
        {"image": b64(picture(GREEN, RED)), "group_id": "staff", "max_face_num": 1, "visualize": True},
    )
    assert out["result"]["face_num"] == 1 and "image" in out
    out = ez(client, "FaceGallery/list", {"group_id": "staff", "start": 1, "length": 1})
    res = out["result"]
    assert res["face_num"] == 3 and [f["face_id"] for f in res["face_list"]] == [1]
    assert set(res["group_id_list"]) == {"default", "staff"}
    assert ez(client, "FaceGallery/list", {"group_id": "staff", "user_id": "bob"})["result"]["face_num"] == 2
    out = ez(client, "FaceGallery/remove", {"group_id": "staff", "user_id": "bob"})
    assert out["result"] == {"group_id": "staff", "removed": [1, 2], "face_num": 1}
    out = ez(client, "FaceGallery/remove", {"group_id": "staff", "face_ids": [0, 77]})
    assert out["result"]["removed"] == [0] and out["result"]["face_num"] == 0
    out = ez(client, "FaceRecognition", {"image": b64(picture(RED)), "group_id": "staff"})
    assert out["result"]["face_list"][0]["user_list"] == []


def test_easydl_match_threshold_and_max_user_num(client):
    ez(client, "FaceGallery/add", {"image": b64(picture(RED)), "user_id": "r"})
    ez(client, "FaceGallery/add", {"image": b64(picture(YELLOW)), "user_id": "y"})
    out = ez(client, "FaceRecognition", {"image": b64(picture(RED)), "match_threshold": 0.0, "max_user_num": 2})
    assert [u["user_id"] for u in out["result"]["face_list"][0]["user_list"]] == ["r", "y"]
    assert [u["group_id"] for u in out["result"]["face_list"][0]["user_list"]] == ["default", "default"]


@pytest.mark.parametrize(
    "op,body,code",
    [
        ("FaceRecognition", {}, 336006),
        ("FaceRecognition", {"image": "@@"}, 336003),
        ("FaceRecognition", {"image": "IMG", "group_id": "nope"}, 336001),
        ("FaceRecognition", {"image": "IMG", "max_user_num": 0}, 336001),
        ("FaceRecognition", {"image": "IMG", "max_face_num": 21}, 336001),
        ("FaceRecognition", {"image": "IMG", "match_threshold": "high"}, 336001),
        ("FaceRecognition", {"image": "A" * (4 * 1024 * 1024 + 8)}, 336004),
        ("FaceGallery/add", {"image": "IMG"}, 336006),
        ("FaceGallery/add", {"user_id": "a"}, 336006),
        ("FaceGallery/add", {"image": "IMG", "user_id": "a\nb"}, 336001),
        ("FaceGallery/add", {"image": "IMG", "user_id": "a", "group_id": ""}, 0),
        ("FaceGallery/add", {"image": "IMG", "user_id": "a", "group_id": 3}, 336001),
        ("FaceGallery/remove", {}, 336006),
        ("FaceGallery/remove", {"face_ids": "1"}, 336001),
        ("FaceGallery/remove", {"face_ids": [1], "group_id": "nope"}, 336001),
        ("FaceGallery/remove", {"user_id": 5}, 336001),
        ("FaceGallery/list", {"group_id": "nope"}, 336001),
        ("FaceGallery/list", {"start": -1}, 336001),
        ("FaceGallery/list", {"length": 1001}, 336001),
        ("FaceGallery/list", {"user_id": ""}, 336001),
    ],
)
def test_easydl_errors(client, op, body, code):
    small = b64(picture(RED, size=(64, 64)))
    body = json.loads(json.dumps(body).replace('"IMG"', json.dumps(small)))
    out = ez(client, op, body)
    assert out.get("error_code", 0) == code, out
    if code:
        assert set(out) == {"log_id", "error_code", "error_msg"}


def test_license_and_busy_envelopes_apply_to_face_routes(cfg):
    class Deny:
        def check(self):
            raise LicenseError("expired", "gone")

    client = create_app(cfg, engine_factory=factory(), gate=Deny()).test_client()
    assert ez(client, "FaceGallery/list", {})["error_code"] == 337000
    code, out = px(client, "index-remove", {"ids": [1]})
    assert code == 403 and out["errorCode"] == 403


def test_metrics_name_each_face_route(client):
    px(client, "infer", {"image": b64(picture(RED))})
    ez(client, "FaceGallery/list", {})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'visionpack_requests_total{route="paddlex_face_infer",code="0"} 1' in text
    assert 'visionpack_requests_total{route="easydl_face_list",code="0"} 1' in text


# --- deploy variants --------------------------------------------------------------------


@pytest.mark.parametrize("index_type", ["Flat", "IVF", "HNSW32"])
def test_l2_thresholds_accept_close_matches_and_reject_strangers(tmp_path, index_type):
    # Default threshold for L2 is the same boundary as IP's 0.9 cosine: 2 - 2*0.9 = 0.2.
    cfg = face_config(tmp_path, options={"metric": "L2", "index_type": index_type, "rec_threshold": 0.2})
    client = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    _, body = px(client, "index-build", {"imageLabelPairs": pairs((RED, "r"), (GREEN, "g"))})
    key = body["result"]["indexKey"]
    _, body = px(client, "infer", {"image": b64(picture(RED, YELLOW)), "indexKey": key})
    faces = sorted(body["result"]["faces"], key=lambda f: f["bbox"][0])
    assert [r["label"] for r in faces[0]["recResults"]] == ["r"]
    assert faces[0]["recResults"][0]["score"] < 0.05  # a distance: small is good
    assert faces[1]["recResults"] == []
    _, body = px(client, "index-remove", {"ids": [0], "indexKey": key})  # works for HNSW32 too
    _, body = px(client, "infer", {"image": b64(picture(RED)), "indexKey": key})
    assert body["result"]["faces"][0]["recResults"] == []


def test_paddlex_face_detector_variant_crops_without_landmarks(tmp_path):
    cfg = face_config(tmp_path, detector="paddlex")
    client = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    px(client, "index-add", {"imageLabelPairs": pairs((GREEN, "g"))})
    _, body = px(client, "infer", {"image": b64(picture(GREEN))})
    face = body["result"]["faces"][0]
    assert face["score"] == pytest.approx(0.97, abs=1e-4)
    assert face["recResults"][0]["label"] == "g"
    x1, y1, x2, y2 = face["bbox"]
    assert abs(x1 - 20) < 5 and abs(x2 - 68) < 5 and abs(y1 - 50) < 5 and abs(y2 - 98) < 5
    out = ez(client, "FaceRecognition", {"image": b64(picture(GREEN))})
    assert "landmark" not in out["result"]["face_list"][0]


def test_visualisation_switches_per_deploy(tmp_path):
    cfg = face_config(tmp_path, options={"visualize_paddlex": False, "visualize_easydl": True})
    client = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    _, body = px(client, "infer", {"image": b64(picture(RED))})
    assert "image" not in body["result"]
    assert "image" in ez(client, "FaceRecognition", {"image": b64(picture(RED))})
    _, body = px(client, "infer", {"image": b64(picture(RED)), "visualize": True})
    assert "image" in body["result"]


def test_two_workers_sharing_a_data_dir_see_each_others_writes(cfg):
    a = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    b = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    _, body = px(b, "infer", {"image": b64(picture(BLUE))})
    assert body["result"]["faces"][0]["recResults"] == []  # b has loaded the (empty) index
    px(a, "index-add", {"imageLabelPairs": pairs((BLUE, "blue"))})
    _, body = px(b, "infer", {"image": b64(picture(BLUE))})
    assert body["result"]["faces"][0]["recResults"][0]["label"] == "blue"
    px(a, "index-remove", {"ids": [0]})
    _, body = px(b, "infer", {"image": b64(picture(BLUE))})
    assert body["result"]["faces"][0]["recResults"] == []


def test_a_new_feature_model_reembeds_the_gallery_at_start(tmp_path):
    cfg = face_config(tmp_path)
    old = create_app(cfg, engine_factory=factory(), gate=None).test_client()
    px(old, "index-add", {"imageLabelPairs": pairs((RED, "r"), (GREEN, "g"))})
    # Same model directory, new weights: the fingerprint changes and start-up re-embeds.
    feat = write_feature(tmp_path, name="fake_feature_v2", extra={"Global": {"model_name": "v2"}})
    cfg2 = dataclasses.replace(cfg, models={**cfg.models, "feature": feat})
    make = factory(twist=0.3)
    app = create_app(cfg2, engine_factory=make, gate=None)
    svc = app.extensions["visionpack"].service
    assert svc.gallery.stale_count() == 0
    _, body = px(app.test_client(), "infer", {"image": b64(picture(GREEN))})
    hit = body["result"]["faces"][0]["recResults"][0]
    assert hit["label"] == "g" and hit["score"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "options",
    [
        {"colour": 1},
        {"rec_threshold": "high"},
        {"det_threshold": True},
        {"topk": 0},
        {"max_faces": 1.5},
        {"index_type": "IVF4096"},
        {"metric": "cosine"},
        {"visualize_paddlex": "on"},
        {"min_face_size": 8},
        {"hnsw_ef_search": 0},
    ],
)
def test_bad_options_stop_the_service(tmp_path, options):
    with pytest.raises(ConfigInvalid):
        create_app(face_config(tmp_path, options=options), engine_factory=factory(), gate=None)


def test_models_must_be_one_of_the_two_layouts_and_data_dir_is_required(tmp_path):
    cfg = face_config(tmp_path)
    with pytest.raises(ConfigInvalid, match="needs models"):
        create_app(
            dataclasses.replace(cfg, models={"feature": cfg.models["feature"]}), engine_factory=factory(), gate=None
        )
    with pytest.raises(ConfigInvalid, match="data_dir"):
        create_app(dataclasses.replace(cfg, data_dir=""), engine_factory=factory(), gate=None)


def test_default_rec_threshold_comes_from_the_model(tmp_path):
    from visionpack.services.face import default_rec_threshold

    assert default_rec_threshold({}) == 0.4  # PaddleX's
    assert default_rec_threshold({"source": {"package": "face-recognition-models"}}) == 0.9
    assert (
        default_rec_threshold({"runtime": {"rec_threshold": 0.55}, "source": {"package": "face-recognition-models"}})
        == 0.55
    )
    cfg = face_config(tmp_path, options={"metric": "L2"})
    svc = create_app(cfg, engine_factory=factory(), gate=None).extensions["visionpack"].service
    assert svc.rec_threshold == pytest.approx(2 - 2 * 0.4)
