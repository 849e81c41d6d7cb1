"""The HTTP contract of human keypoint detection, both dialects, with fake engines.

The fake detector returns boxes given in *resized-image* pixels divided by the fed
``scale_factor`` (as a real export's in-graph decoder does), so a wrong feed shows up as wrong
boxes. The fake keypoint model puts each joint's peak where the crop's bright stripe is, so
results follow the input, and it is mirror-equivariant, so the flip test can be checked.
"""

from __future__ import annotations

import base64
import json
import threading

import cv2
import numpy as np
import pytest
import yaml

from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import ConfigInvalid, LicenseError, ModelInvalid
from visionpack.services.keypoint import COCO_NAMES

DEPLOY = "demo-keypoint"
EASYDL = f"/{DEPLOY}/HumanKeypointDetection"
PADDLEX = "/human-keypoint-detection"
NORM = {"type": "NormalizeImage", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}
DET_YML = {
    "mode": "paddle",
    "draw_threshold": 0.5,
    "arch": "YOLO",
    "label_list": ["person"],
    "Preprocess": [
        {"type": "Resize", "target_size": [320, 320], "keep_ratio": False, "interp": 2},
        NORM,
        {"type": "Permute"},
    ],
    "Global": {"model_name": "PP-YOLOE-S_human"},
}
KPT_YML = {
    "arch": "HRNet",
    "use_dark": True,
    "Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}, NORM, {"type": "Permute"}],
    "Global": {"model_name": "PP-TinyPose_128x96"},
}
# Row group of each joint: a joint and its mirror partner share a row, so the fake is symmetric.
GROUP = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]


def write_bundle(root, name, cfg):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "inference.json").write_text("{}")
    (d / "inference.pdiparams").write_bytes(b"\0")
    (d / "inference.yml").write_text(yaml.safe_dump(cfg))
    return d


class FakeDetector:
    """Rows in the 320x320 network frame; the 'graph' divides by scale_factor."""

    def __init__(self, rows=None, names=("image", "scale_factor")):
        self.input_names = list(names)
        self.rows = np.array(
            rows
            if rows is not None
            else [[0, 0.9, 20, 40, 100, 300], [0, 0.6, 150, 30, 230, 290], [0, 0.3, 250, 10, 300, 100]],
            np.float32,
        )
        self.feeds = []

    def run(self, feeds):
        self.feeds.append({k: v.copy() for k, v in feeds.items() if k != "image"})
        sf = feeds["scale_factor"][0]
        rows = self.rows.copy()
        rows[:, [2, 4]] /= sf[1]
        rows[:, [3, 5]] /= sf[0]
        return [rows, np.array([len(rows)], np.int32)]


class FakeKeypoints:
    """Peak x = the stripe's column in the crop (/4), peak y = 3 + 3 * GROUP[j]."""

    input_names = ["image"]

    def __init__(self, centred=False):
        self.centred = centred  # peaks at the heatmap centre, whatever the crop shows
        self.batches = []
        self.inputs = []

    def run(self, feeds):
        x = feeds["image"]
        self.batches.append(x.shape[0])
        self.inputs.append(x)
        n = x.shape[0]
        ys, xs = np.mgrid[0:32, 0:24].astype(np.float32)
        bright = x[:, 0].mean(axis=1)  # [N, W] column brightness
        col = bright.argmax(axis=1) / 4.0  # 96 input columns -> 24 heatmap columns
        if self.centred:
            col[:] = 12.0
        hm = np.zeros((n, 17, 32, 24), np.float32)
        for j in range(17):
            cy = 16 if self.centred else 3 + 3 * GROUP[j]
            hm[:, j] = np.exp(-((xs[None] - col[:, None, None]) ** 2 + (ys[None] - cy) ** 2) / 4.5)
        hm *= 0.9
        return [hm, hm.reshape(n, 17, -1).argmax(2)]


def scene(h=480, w=640, stripes=(), noise=False):
    img = np.full((h, w, 3), 40, np.uint8)
    for x in stripes:
        img[:, x : x + 3] = 250
    return img


def b64(img, ext=".jpg"):
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return base64.b64encode(buf.tobytes()).decode()


@pytest.fixture
def bundles(tmp_path):
    return write_bundle(tmp_path, "det", DET_YML), write_bundle(tmp_path, "kpt", KPT_YML)


def make(bundles, tmp_path, det=None, kpt=None, gate=None, **cfg_kw):
    det = det or FakeDetector()
    kpt = kpt or FakeKeypoints()
    cfg = ServiceConfig(
        deploy=DEPLOY,
        service="keypoint",
        port=8702,
        run_dir=str(tmp_path / "run"),
        models={"detector": str(bundles[0]), "keypoint": str(bundles[1])},
        **cfg_kw,
    )
    app = create_app(cfg, engine_factory=lambda b, c: det if b.path == bundles[0] else kpt, gate=gate)
    return app.test_client(), det, kpt


@pytest.fixture
def env(bundles, tmp_path):
    return make(bundles, tmp_path)


def post(client, body, url=PADDLEX, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(url, data=data, content_type=kw.pop("content_type", "application/json"), **kw)


# --- PaddleX route ------------------------------------------------------------------------------


def test_paddlex_persons_have_the_paddlex_shape_and_an_image_by_default(env):
    client, det, kpt = env
    r = post(client, {"image": b64(scene(stripes=(60, 380)))})
    body = r.get_json()
    assert r.status_code == 200 and body["errorCode"] == 0 and body["errorMsg"] == "Success"
    res = body["result"]
    assert set(res) == {"persons", "image"}
    persons = res["persons"]
    assert len(persons) == 2  # 0.3 is under draw_threshold 0.5
    p = persons[0]
    assert set(p) == {"bbox", "kpts", "detScore", "kptScore"}
    # 320x320 frame -> 640x480 image: x * 2, y * 1.5
    assert p["bbox"] == pytest.approx([40, 60, 200, 450])
    assert p["detScore"] == pytest.approx(0.9)
    assert len(p["kpts"]) == 17 and all(len(k) == 3 for k in p["kpts"])
    assert p["kptScore"] == pytest.approx(np.mean([k[2] for k in p["kpts"]]), rel=1e-6)
    img = cv2.imdecode(np.frombuffer(base64.b64decode(res["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 640, 3)
    # both persons in one keypoint call (warmup's single crop came first)
    assert kpt.batches[-1] == 2


def test_keypoints_follow_the_image_content(env):
    client, _, _ = env
    persons = post(client, {"image": b64(scene(stripes=(60, 380)))}).get_json()["result"]["persons"]
    xs = [np.array(p["kpts"])[:, 0] for p in persons]
    # each person's joints sit on the stripe inside its own box (within a heatmap cell = ~5 px)
    assert np.allclose(xs[0], 61, atol=6) and np.allclose(xs[1], 381, atol=6)
    ys = np.array(persons[0]["kpts"])[:, 1]
    assert ys[1] == pytest.approx(ys[2]) and ys[5] > ys[1]  # mirror partners share a row


def test_det_threshold_per_request_and_per_deploy(bundles, tmp_path, env):
    client, _, _ = env
    img = b64(scene())
    count = lambda body: len(post(client, body).get_json()["result"]["persons"])  # noqa: E731
    assert count({"image": img, "detThreshold": 0.7}) == 1
    assert count({"image": img, "detThreshold": 0.2}) == 3
    assert count({"image": img, "detThreshold": 0}) == 3
    assert count({"image": img, "detThreshold": None}) == 2
    assert count({"image": img, "detThreshold": 5}) == 0  # any number is valid for PaddleX
    c2, _, _ = make(bundles, tmp_path, options={"det_threshold": 0.25})
    assert len(post(c2, {"image": img}).get_json()["result"]["persons"]) == 3
    assert post(c2, {"image": img}, url=EASYDL).get_json()["person_num"] == 3


def test_visualize_switches_per_request_and_per_deploy(bundles, tmp_path, env):
    client, _, _ = env
    img = b64(scene())
    assert "image" not in post(client, {"image": img, "visualize": False}).get_json()["result"]
    off, _, _ = make(bundles, tmp_path, options={"visualize_paddlex": False})
    assert "image" not in post(off, {"image": img}).get_json()["result"]
    assert "image" in post(off, {"image": img, "visualize": True}).get_json()["result"]
    global_off, _, _ = make(bundles, tmp_path, visualize=False)
    assert "image" not in post(global_off, {"image": img}).get_json()["result"]


def test_zero_persons_is_an_empty_list_and_still_an_image(bundles, tmp_path):
    det = FakeDetector(rows=[[-1, 0, 0, 0, 0, 0]])  # how exports pad an empty result
    client, _, kpt = make(bundles, tmp_path, det=det)
    calls = len(kpt.batches)
    res = post(client, {"image": b64(scene())}).get_json()["result"]
    assert res["persons"] == [] and res["image"]
    assert len(kpt.batches) == calls  # the keypoint model is not called for nobody
    out = post(client, {"image": b64(scene())}, url=EASYDL).get_json()
    assert out["person_num"] == 0 and out["person_info"] == []


def test_many_persons_are_batched_in_kpt_batch_chunks(bundles, tmp_path):
    rows = [[0, 0.99 - i * 0.01, 12 * i, 5 * i, 12 * i + 10, 5 * i + 150] for i in range(26)]
    kpt = FakeKeypoints(centred=True)
    client, _, _ = make(bundles, tmp_path, det=FakeDetector(rows), kpt=kpt, options={"kpt_batch": 8})
    persons = post(client, {"image": b64(scene())}).get_json()["result"]["persons"]
    assert len(persons) == 26
    assert kpt.batches[1:] == [8, 8, 8, 2]
    # order is the detector's, and every person keeps its own box across chunks: the centred
    # fake puts all 17 joints on the centre of the person's window, i.e. of its box
    assert [p["detScore"] for p in persons] == sorted([p["detScore"] for p in persons], reverse=True)
    for p in persons:
        x1, y1, x2, y2 = p["bbox"]
        k = np.array(p["kpts"])
        np.testing.assert_allclose(k[:, 0], (x1 + x2) / 2, atol=0.01)
        np.testing.assert_allclose(k[:, 1], (y1 + y2) / 2, atol=0.01)


def test_tiny_and_huge_boxes_at_the_border(bundles, tmp_path):
    rows = [
        [0, 0.9, -40, -40, 400, 400],  # larger than the image: clipped to it
        [0, 0.8, 0, 0, 0.5, 1.0],  # one pixel at the corner
        [0, 0.8, 319.5, 319, 330, 330],  # sliver at the far corner
        [0, 0.8, 100, 100, 100, 150],
    ]  # zero width: dropped
    client, _, _ = make(bundles, tmp_path, det=FakeDetector(rows))
    persons = post(client, {"image": b64(scene(stripes=(600,)))}).get_json()["result"]["persons"]
    assert len(persons) == 3
    assert persons[0]["bbox"] == [0, 0, 640, 480]
    assert persons[1]["bbox"] == pytest.approx([0, 0, 1, 1.5])
    assert persons[2]["bbox"] == pytest.approx([639, 478.5, 640, 480])
    for p in persons:
        assert np.isfinite(np.array(p["kpts"])).all()


def test_detectors_with_and_without_im_shape_get_their_inputs_by_name(bundles, tmp_path):
    with_shape = FakeDetector(names=("im_shape", "image", "scale_factor"))
    client, _, _ = make(bundles, tmp_path, det=with_shape)
    a = post(client, {"image": b64(scene(h=240, w=640))}).get_json()["result"]["persons"]
    feeds = with_shape.feeds[-1]
    assert set(feeds) == {"im_shape", "scale_factor"}
    np.testing.assert_array_equal(feeds["im_shape"], [[320, 320]])
    np.testing.assert_allclose(feeds["scale_factor"], [[320 / 240, 0.5]])
    plain = FakeDetector()
    client2, _, _ = make(bundles, tmp_path, det=plain)
    b = post(client2, {"image": b64(scene(h=240, w=640))}).get_json()["result"]["persons"]
    assert set(plain.feeds[-1]) == {"scale_factor"}
    assert [p["bbox"] for p in a] == [p["bbox"] for p in b]


def test_flip_test_runs_plain_and_mirrored_crops_together(bundles, tmp_path, env):
    plain_client, _, _ = env
    img = b64(scene(stripes=(60, 380)))
    plain = post(plain_client, {"image": img}).get_json()["result"]["persons"]
    client, _, kpt = make(bundles, tmp_path, options={"flip": True})
    flipped = post(client, {"image": img}).get_json()["result"]["persons"]
    assert kpt.batches[-1] == 4
    x = kpt.inputs[-1]
    np.testing.assert_array_equal(x[2:], x[:2, :, :, ::-1])
    # averaging with the flipped-back maps (1-cell PP-TinyPose shift included) moves x by
    # at most a heatmap cell; y, which the flip does not touch, is unchanged
    for p, f in zip(plain, flipped):
        kp, kf = np.array(p["kpts"]), np.array(f["kpts"])
        assert np.all(np.abs(kp[:, 0] - kf[:, 0]) < 8)
        np.testing.assert_allclose(kp[:, 1], kf[:, 1], atol=1e-3)
    assert any(
        np.abs(np.array(p["kpts"])[:, 0] - np.array(f["kpts"])[:, 0]).max() > 0.01 for p, f in zip(plain, flipped)
    )


# --- EasyDL route ---------------------------------------------------------------------------------


def test_easydl_shapes_results_like_baidu_body_analysis(env):
    client, _, _ = env
    r = post(client, {"image": b64(scene(stripes=(60, 380)))}, url=EASYDL)
    body = r.get_json()
    assert r.status_code == 200 and isinstance(body["log_id"], int)
    assert set(body) == {"log_id", "person_num", "person_info"}  # no image unless asked
    assert body["person_num"] == 2 == len(body["person_info"])
    info = body["person_info"][0]
    assert info["location"] == pytest.approx({"left": 40, "top": 60, "width": 160, "height": 390, "score": 0.9})
    parts = info["body_parts"]
    assert set(parts) == set(COCO_NAMES) | {"neck"}
    assert set(parts["left_ankle"]) == {"x", "y", "score"}
    ls, rs = parts["left_shoulder"], parts["right_shoulder"]
    assert parts["neck"]["x"] == pytest.approx((ls["x"] + rs["x"]) / 2)
    assert parts["neck"]["score"] == pytest.approx(min(ls["score"], rs["score"]))
    px = post(client, {"image": b64(scene(stripes=(60, 380)))}).get_json()["result"]["persons"][0]
    assert parts["nose"]["x"] == px["kpts"][0][0] and parts["right_ankle"]["y"] == px["kpts"][16][1]


def test_easydl_threshold_and_visualize(bundles, tmp_path, env):
    client, _, _ = env
    img = b64(scene())
    assert post(client, {"image": img, "threshold": 0.2}, url=EASYDL).get_json()["person_num"] == 3
    out = post(client, {"image": img, "visualize": True}, url=EASYDL).get_json()
    assert base64.b64decode(out["image"])[:2] == b"\xff\xd8"
    on, _, _ = make(bundles, tmp_path, options={"visualize_easydl": True})
    assert "image" in post(on, {"image": img}, url=EASYDL).get_json()


# --- errors -------------------------------------------------------------------------------------------

GOOD = b64(scene())


@pytest.mark.parametrize(
    "body,code",
    [
        ("{not json", 336002),
        (b"\xff\xfe\x00garbage", 336002),
        ("[1, 2]", 336001),
        ({"threshold": 0.5}, 336006),
        ({"image": ""}, 336006),
        ({"image": None}, 336006),
        ({"image": 5}, 336001),
        ({"image": "@@@not-base64@@@"}, 336003),
        ({"image": "data:image/jpeg;base64,AAAA"}, 336003),
        ({"image": "R0lGODlhAQABAAAAACw="}, 336005),
        ({"image": "A" * (4 * 1024 * 1024 + 8)}, 336004),
        ({"image": "http://127.0.0.1:9/x.jpg"}, 336001),
        ({"image": GOOD, "threshold": 1.5}, 336001),
        ({"image": GOOD, "threshold": -0.1}, 336001),
        ({"image": GOOD, "threshold": "0.5"}, 336001),
        ({"image": GOOD, "threshold": True}, 336001),
        ({"image": GOOD, "visualize": "yes"}, 336001),
        ({"image": GOOD, "visualize": 1}, 336001),
        ('{"image": "%s", "threshold": NaN}' % GOOD, 336002),  # NaN is not JSON (RFC 8259)
    ],
)
def test_easydl_error_codes(env, body, code):
    client, _, _ = env
    r = post(client, body, url=EASYDL)
    out = r.get_json()
    assert out["error_code"] == code, out
    assert set(out) == {"log_id", "error_code", "error_msg"}
    assert r.status_code == 200


def test_easydl_tiny_image_form_body_and_oversized_body(env):
    client, _, _ = env
    tiny = base64.b64encode(cv2.imencode(".png", np.zeros((10, 40, 3), np.uint8))[1].tobytes()).decode()
    assert post(client, {"image": tiny}, url=EASYDL).get_json()["error_code"] == 336004
    assert client.post(EASYDL, data={"image": GOOD}).get_json()["error_code"] == 336001
    big = client.post(EASYDL, data=b"x" * (4 * 1024 * 1024 + 200 * 1024), content_type="application/json")
    assert big.get_json()["error_code"] == 336004


@pytest.mark.parametrize(
    "body,status",
    [
        ({}, 422),
        ({"image": None}, 422),
        ("nope", 422),
        ("[1]", 422),
        ({"image": GOOD, "detThreshold": "0.5"}, 422),
        ({"image": GOOD, "detThreshold": False}, 422),
        ('{"image": "%s", "detThreshold": Infinity}' % GOOD, 422),
        ({"image": GOOD, "visualize": "true"}, 422),
        ({"image": "https://example.com/person.jpg"}, 422),
        ({"image": "###"}, 400),
        ({"image": "R0lGODlhAQABAAAAACw="}, 400),
    ],
)
def test_paddlex_errors_use_status_as_error_code(env, body, status):
    client, _, _ = env
    r = post(client, body)
    out = r.get_json()
    assert r.status_code == status and out["errorCode"] == status, out
    assert set(out) == {"logId", "errorCode", "errorMsg"}


def test_license_failure_answers_337000_and_403(bundles, tmp_path):
    class Deny:
        def check(self):
            raise LicenseError("expired", "license expired")

    client, _, _ = make(bundles, tmp_path, gate=Deny())
    assert post(client, {"image": GOOD}, url=EASYDL).get_json()["error_code"] == 337000
    r = post(client, {"image": GOOD})
    assert r.status_code == 403 and r.get_json()["errorCode"] == 403


def test_requests_over_the_inflight_limit_get_336100(bundles, tmp_path):
    gate_open, entered = threading.Event(), threading.Event()

    class SlowKpt(FakeKeypoints):
        def run(self, feeds):
            entered.set()
            gate_open.wait(10)
            return super().run(feeds)

    gate_open.set()
    client, _, _ = make(bundles, tmp_path, kpt=SlowKpt(), max_inflight=1)
    entered.clear()
    gate_open.clear()
    first = {}
    t = threading.Thread(target=lambda: first.update(r=post(client, {"image": GOOD}, url=EASYDL).get_json()))
    t.start()
    assert entered.wait(5)
    second = post(client, {"image": GOOD}, url=EASYDL).get_json()
    third = post(client, {"image": GOOD})
    gate_open.set()
    t.join(5)
    assert second["error_code"] == 336100 and third.status_code == 503
    assert first["r"]["person_num"] == 2


def test_a_broken_keypoint_model_is_336000_and_500(bundles, tmp_path):
    class Broken(FakeKeypoints):
        n = 0

        def run(self, feeds):
            Broken.n += 1
            out = super().run(feeds)
            return out if Broken.n == 1 else [out[0][:, :, 0]]  # rank 3 after warmup

    client, _, _ = make(bundles, tmp_path, kpt=Broken())
    assert post(client, {"image": GOOD}, url=EASYDL).get_json()["error_code"] == 336000
    r = post(client, {"image": GOOD})
    assert r.status_code == 500 and r.get_json()["errorMsg"] == "Internal server error"


def test_metrics_count_both_routes(env):
    client, _, _ = env
    post(client, {"image": GOOD}, url=EASYDL)
    post(client, {}, url=EASYDL)
    post(client, {"image": GOOD})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'visionpack_requests_total{route="easydl_keypoint",code="0"} 1' in text
    assert 'visionpack_requests_total{route="easydl_keypoint",code="336006"} 1' in text
    assert 'visionpack_requests_total{route="paddlex_keypoint",code="0"} 1' in text
    assert client.get("/ready").get_json()["ready"] is True


# --- configuration and model errors at start ------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"det_treshold": 0.4},
        {"det_threshold": 1.5},
        {"det_threshold": "0.4"},
        {"det_threshold": True},
        {"flip": "yes"},
        {"visualize_paddlex": 1},
        {"visualize_easydl": "off"},
        {"kpt_batch": 0},
        {"kpt_batch": True},
        {"kpt_batch": "8"},
    ],
)
def test_bad_options_stop_the_service(bundles, tmp_path, options):
    with pytest.raises(ConfigInvalid):
        make(bundles, tmp_path, options=options)


@pytest.mark.parametrize("models", [{"detector"}, {"keypoint"}, {"detector", "keypoint", "classifier"}])
def test_missing_or_unknown_model_roles_stop_the_service(bundles, tmp_path, models):
    paths = {"detector": str(bundles[0]), "keypoint": str(bundles[1]), "classifier": str(bundles[1])}
    cfg = ServiceConfig(deploy=DEPLOY, service="keypoint", models={m: paths[m] for m in models})
    with pytest.raises(ConfigInvalid):
        create_app(cfg, engine_factory=lambda b, c: FakeDetector(), gate=None)


@pytest.mark.parametrize(
    "which,patch",
    [
        ("det", {"label_list": None}),
        ("det", {"draw_threshold": "x"}),
        ("det", {"Preprocess": [{"type": "Mosaic"}]}),
        ("kpt", {"Preprocess": [NORM, {"type": "Permute"}]}),
    ],
)
def test_bundles_that_are_not_the_paddlex_contract_are_model_errors(tmp_path, which, patch):
    det_cfg = {**DET_YML, **(patch if which == "det" else {})}
    kpt_cfg = {**KPT_YML, **(patch if which == "kpt" else {})}
    bundles = (write_bundle(tmp_path, "d", det_cfg), write_bundle(tmp_path, "k", kpt_cfg))
    with pytest.raises(ModelInvalid):
        make(bundles, tmp_path)


def test_swapped_bundles_are_named_as_such(bundles, tmp_path):
    with pytest.raises(ModelInvalid, match="swapped"):
        make(bundles[::-1], tmp_path)


def test_engines_with_unexpected_inputs_are_model_errors(bundles, tmp_path):
    with pytest.raises(ModelInvalid):
        make(bundles, tmp_path, det=FakeDetector(names=("x", "scale_factor")))

    class TwoInputs(FakeKeypoints):
        input_names = ["image", "extra"]

    with pytest.raises(ModelInvalid):
        make(bundles, tmp_path, kpt=TwoInputs())


def test_warmup_runs_both_models_once(bundles, tmp_path):
    _, det, kpt = make(bundles, tmp_path)
    assert len(det.feeds) == 1 and kpt.batches == [1]
