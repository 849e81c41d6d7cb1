"""PaddleX itself vs our service: same bundles, same image, same thresholds, same answers.

PaddleX 3.7.2 runs in its own environment (tools/paddlex_env.sh -> .paddlex-venv, never
imported here) in a child process, through ``create_pipeline`` with the human_keypoint_detection
config pointing at our bundles, and through ``paddlex --serve`` for the HTTP contract. Both sides
run Paddle Inference 3.3.1 without oneDNN, so a difference is a difference in pre/post-processing.
Passing proves the bundles are real PaddleX exports and that our pipeline computes what PaddleX's
does. Bundles: the toy exports of test_keypoint_service (with and without ``im_shape``), and the
demo bundles under models/ once they are in the tree.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from test_keypoint_service import DEMO_DET, DEMO_KPT, REPO, demo_present, export_toy_bundles, free_port, scene_image

from visionpack.api.app import create_app
from visionpack.config import ServiceConfig

# Float tolerance. Both sides feed bit-identical crops. With our engines native (the toy bundles,
# which have no manifest, and the "_native" cases) the models compute the same numbers as in
# PaddleX and everything agrees to float rounding: STRICT. A bundle whose manifest verified oneDNN
# runs on oneDNN here, while PaddleX keeps PP-TinyPose native (its blocklist); oneDNN's
# convolutions round differently (heatmap peaks move by ~1e-3), which DARK turns into a few
# hundredths of a heatmap cell - in image pixels proportional to the person's crop window: ONEDNN.
STRICT = {"xy": 1e-2, "xy_window": 0.0, "score": 1e-4, "det_score": 1e-5, "box": 1e-2}
# oneDNN vs native kernels differ in the last float bits; DARK's Taylor step turns that into a few
# hundredths of a pixel on small persons (up to 0.034 px seen), hence the 0.05 px floor. Where a
# heatmap's top is nearly flat (the v4 bundles average each crop's heatmaps with its mirror's, and
# on junk detections the two peaks do not coincide), DARK's Hessian is near zero and the same
# rounding moved one keypoint by 0.1 heatmap cell (0.61 px in a 143 px window, detScore 0.015):
# 5e-3 of the window = 0.12 cell. The "_native" cases still hold the pipeline to STRICT.
ONEDNN = {"xy": 5e-2, "xy_window": 5e-3, "score": 5e-3, "det_score": 1e-4, "box": 1e-2}

RUNNER = textwrap.dedent("""
    import json, sys
    import cv2, numpy as np
    from paddlex import create_pipeline
    from paddlex.inference import PaddlePredictorOption

    out = []
    for job in json.loads(open(sys.argv[1]).read()):
        cfg = {"pipeline_name": "human_keypoint_detection", "SubModules": {
            "ObjectDetection": {"module_name": "object_detection", "model_name": job["det_name"],
                                "model_dir": job["det"], "batch_size": 1, "threshold": None, "img_size": None},
            "KeypointDetection": {"module_name": "keypoint_detection", "model_name": job["kpt_name"],
                                  "model_dir": job["kpt"], "batch_size": 1, "flip": job["flip"], "use_udp": None}}}
        opt = PaddlePredictorOption(device_type="cpu", cpu_threads=1, run_mode="paddle")
        pipe = create_pipeline(config=cfg, device="cpu", pp_option=opt)
        img = cv2.imread(job["image"])  # BGR, as PaddleX serving decodes a request
        runs = []
        for thr in job["thresholds"]:
            res = list(pipe.predict(img, det_threshold=thr))[0]
            runs.append([{"bbox": [float(v) for v in b["coordinate"]], "kpts": np.asarray(b["keypoints"]).tolist(),
                          "detScore": float(b["det_score"]), "kptScore": float(b["kpt_score"])}
                         for b in res["boxes"]])
        out.append(runs)
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def paddlex_python() -> str:
    # Builds the env on first use (a few minutes, serialised by the script's lock), then reuses it.
    proc = subprocess.run(["bash", str(REPO / "tools" / "paddlex_env.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def paddlex_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # Offline: no model-hoster probe; oneDNN off on both sides (paddle 3.3.1 + PIR + oneDNN is broken).
    env.update(
        PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True", PADDLE_PDX_ENABLE_MKLDNN_BYDEFAULT="False", GLOG_minloglevel="2"
    )
    return env


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    toy = export_toy_bundles(tmp_path_factory.mktemp("toy_pose_compat"))
    out = [
        ("toy", toy["det"], toy["pose"], "PP-YOLOE-S_human", False),
        ("toy_flip", toy["det"], toy["pose"], "PP-YOLOE-S_human", True),
        # PaddleX feeds im_shape only to models whose name says so (YOLOv3 here); we go by input names.
        ("toy_im_shape", toy["det_im_shape"], toy["pose"], "YOLOv3-DarkNet53", False),
    ]
    if demo_present():
        out += [
            ("demo", DEMO_DET, DEMO_KPT, "PP-YOLOE-S_human", False),
            ("demo_flip", DEMO_DET, DEMO_KPT, "PP-YOLOE-S_human", True),
            ("demo_native", DEMO_DET, DEMO_KPT, "PP-YOLOE-S_human", False),
        ]
    return out


THRESHOLDS = (0.5, 0.3, 0.0, 1.0)  # default, lower, everything (many persons), nobody (score > 1)


def ours(det: Path, kpt: Path, flip: bool, image_b64: str, native: bool = False) -> list[list[dict]]:
    cfg = ServiceConfig(
        deploy="demo-keypoint",
        service="keypoint",
        threads_per_worker=1,
        models={"detector": str(det), "keypoint": str(kpt)},
        options={"flip": flip},
        onednn=False if native else None,
    )
    client = create_app(cfg, gate=None).test_client()
    runs = []
    for thr in THRESHOLDS:
        r = client.post("/human-keypoint-detection", json={"image": image_b64, "detThreshold": thr, "visualize": False})
        assert r.status_code == 200, r.get_json()
        runs.append(r.get_json()["result"]["persons"])
    return runs


def assert_same_persons(a: list[dict], b: list[dict], what: str, tol: dict = STRICT) -> None:
    assert len(a) == len(b), f"{what}: {len(a)} persons vs PaddleX {len(b)}"
    for i, (p, q) in enumerate(zip(a, b)):
        np.testing.assert_allclose(p["bbox"], q["bbox"], atol=tol["box"], err_msg=f"{what} person {i} bbox")
        assert p["detScore"] == pytest.approx(q["detScore"], abs=tol["det_score"]), f"{what} person {i} detScore"
        kp, kq = np.array(p["kpts"]), np.array(q["kpts"])
        x1, y1, x2, y2 = q["bbox"]
        window = max(x2 - x1, (y2 - y1) * 0.75) * 1.25  # the crop window's width (96x128 input)
        np.testing.assert_allclose(
            kp[:, :2], kq[:, :2], atol=max(tol["xy"], tol["xy_window"] * window), err_msg=f"{what} person {i} keypoints"
        )
        np.testing.assert_allclose(kp[:, 2], kq[:, 2], atol=tol["score"], err_msg=f"{what} person {i} scores")
        assert p["kptScore"] == pytest.approx(q["kptScore"], abs=tol["score"])


def test_persons_and_keypoints_equal_paddlex(paddlex_python, cases, tmp_path):
    img = scene_image()
    path = tmp_path / "scene.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    image_b64 = base64.b64encode(path.read_bytes()).decode()
    jobs = [
        {
            "det": str(d),
            "kpt": str(k),
            "det_name": name,
            "kpt_name": "PP-TinyPose_128x96",
            "flip": flip,
            "image": str(path),
            "thresholds": list(THRESHOLDS),
        }
        for _, d, k, name, flip in cases
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "runner.py").write_text(RUNNER)
    proc = subprocess.run(
        [paddlex_python, str(tmp_path / "runner.py"), str(tmp_path / "jobs.json")],
        capture_output=True,
        text=True,
        env=paddlex_env(),
        cwd=tmp_path,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    theirs = json.loads(proc.stdout.split("RESULT ", 1)[1])
    compared = 0
    for (label, det, kpt, _, flip), their_runs in zip(cases, theirs):
        native = label.endswith("_native") or label.startswith("toy")
        for thr, mine, their in zip(THRESHOLDS, ours(det, kpt, flip, image_b64, native), their_runs):
            assert_same_persons(mine, their, f"{label} detThreshold={thr}", STRICT if native else ONEDNN)
            compared += len(mine)
        assert their_runs[-1] == [], f"{label}: threshold 1.0 should leave nobody"
    assert compared >= 20 * len(cases)  # the threshold-0 runs carry the many-person case


DECODE_RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from paddlex.inference.models.keypoint_detection.processors import KptPostProcess

    d = np.load(sys.argv[1])
    out = {}
    for dark in (True, False):
        post = KptPostProcess(use_dark=dark)
        kpts = []
        for hm, c, s in zip(d["hm"], d["centers"], d["scales"]):  # PaddleX decodes one person per call
            r = post.apply(hm.copy(), c, s)[0]
            kpts.append(np.concatenate([r["keypoints"], [[r["kpt_score"]] * 3]]).tolist())
        out[str(dark)] = kpts
    print("RESULT " + json.dumps(out))
""")


def test_heatmap_decoding_equals_paddlex_on_hard_maps(paddlex_python, tmp_path):
    """DARK and the quarter shift against PaddleX's KptPostProcess on maps chosen to hit edge
    cases: peaks on and next to the border, flat plateaus (first argmax wins), noise, negative maps."""
    rng = np.random.default_rng(11)
    ys, xs = np.mgrid[0:32, 0:24].astype(np.float32)
    maps = []
    for i in range(48):
        cx, cy = rng.uniform(-1, 25), rng.uniform(-1, 33)
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * rng.uniform(1, 3) ** 2)) * rng.uniform(0.1, 1)
        maps.append((g + rng.normal(0, 0.02, g.shape) * (i % 3 == 0)).astype(np.float32))
    maps[3] = np.full((32, 24), 0.5, np.float32)  # plateau: the first cell wins
    maps[20] = -np.abs(rng.normal(0, 1, (32, 24))).astype(np.float32)  # peak <= 0: the origin
    maps[40] = np.zeros((32, 24), np.float32)
    maps[40][0, 23] = 1.0  # corner peak
    maps[41] = np.zeros((32, 24), np.float32)
    maps[41][2, 21] = 1.0  # first cell DARK refines
    hm = np.stack(maps[:51] + maps[:3]).reshape(3, 17, 32, 24)
    centers = np.float32([[100, 200], [50.5, 60.25], [300, 10]])
    scales = np.float32([[90, 120], [33, 44], [201, 268]])
    np.savez(tmp_path / "maps.npz", hm=hm, centers=centers, scales=scales)
    (tmp_path / "decode.py").write_text(DECODE_RUNNER)
    proc = subprocess.run(
        [paddlex_python, str(tmp_path / "decode.py"), str(tmp_path / "maps.npz")],
        capture_output=True,
        text=True,
        env=paddlex_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.split("RESULT ", 1)[1])
    from visionpack.inference.kpt_transforms import decode

    for dark in (True, False):
        kpts, scores = decode(hm, centers, scales, use_dark=dark)
        ref = np.array(theirs[str(dark)])
        np.testing.assert_allclose(kpts, ref[:, :17], atol=1e-3, err_msg=f"use_dark={dark}")
        np.testing.assert_allclose(scores, ref[:, 17, 0], atol=1e-6)


DET_PRE_RUNNER = textwrap.dedent("""
    import copy, json, sys, types
    import numpy as np
    from paddlex.inference.models.object_detection.predictor import DetRunnerPredictor
    from paddlex.inference.models.object_detection.processors import ToBatch

    job = json.loads(open(sys.argv[1]).read())
    img = np.load(sys.argv[2])
    out = {}
    for i, pre in enumerate(job):
        ops = []
        for cfg in copy.deepcopy(pre):  # the builders DetRunnerPredictor._build registers, without a model
            kind = cfg.pop("type")
            ops.append(DetRunnerPredictor._FUNC_MAP[kind](types.SimpleNamespace(), **cfg))
        datas = [{"img": img.copy(), "ori_img": img, "img_size": [img.shape[1], img.shape[0]],
                  "ori_img_size": [img.shape[1], img.shape[0]]}]
        for op in ops:
            datas = op(datas)
        shape, image, scale = ToBatch(("img_size", "img", "scale_factors"))(datas)
        np.savez(sys.argv[3] + f"/{i}.npz", im_shape=shape, image=image, scale_factor=scale)
    print("DONE")
""")

DET_PRES = [
    [
        {"type": "Resize", "target_size": [320, 320], "keep_ratio": False, "interp": 2},
        NORM_YML := {
            "type": "NormalizeImage",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "is_scale": True,
        },
        {"type": "Permute"},
    ],
    [
        {"type": "Resize", "target_size": [608, 800], "keep_ratio": True, "interp": 1},
        {
            "type": "NormalizeImage",
            "mean": [123.675, 116.28, 103.53],
            "std": [58.395, 57.12, 57.375],
            "is_scale": False,
        },
        {"type": "Permute"},
        {"type": "PadStride", "stride": 32},
    ],
    [
        {"type": "Resize", "target_size": [640, 640], "keep_ratio": True, "interp": 3},
        {"type": "Pad", "size": [640, 640], "fill_value": [114.0, 114.0, 114.0]},
        NORM_YML,
        {"type": "Permute"},
    ],
    [{"type": "WarpAffine", "keep_res": True}, NORM_YML, {"type": "Permute"}],
    [
        {"type": "Resize", "target_size": [96, 160], "interp": 0},
        {"type": "NormalizeImage", "norm_type": "none", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        {"type": "Permute"},
    ],
]


def test_detector_preprocessing_equals_paddlex(paddlex_python, tmp_path):
    """Our feeds vs PaddleX's own Preprocess ops for each op type, on an odd-sized image."""
    from visionpack.inference.det_transforms import DetPreprocessor

    rng = np.random.default_rng(5)
    img = cv2.GaussianBlur(rng.integers(0, 256, (333, 517, 3), dtype=np.uint8), (5, 5), 0)
    np.save(tmp_path / "img.npy", img)
    (tmp_path / "job.json").write_text(json.dumps(DET_PRES))
    (tmp_path / "pre.py").write_text(DET_PRE_RUNNER)
    proc = subprocess.run(
        [
            paddlex_python,
            str(tmp_path / "pre.py"),
            str(tmp_path / "job.json"),
            str(tmp_path / "img.npy"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=paddlex_env(),
        timeout=300,
    )
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    for i, pre in enumerate(DET_PRES):
        theirs = np.load(tmp_path / f"{i}.npz")
        ours = DetPreprocessor.from_config({"Preprocess": pre}, ["im_shape", "image", "scale_factor"])(img)
        for name in ("im_shape", "scale_factor"):
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-7, err_msg=f"Preprocess #{i} {name}")
        a, b = ours["image"], theirs["image"]
        assert a.shape == b.shape, i
        # PaddleX's env has OpenCV 4.10, ours 4.12: their interpolation code may round a rare
        # pixel one grey level apart. Allow exactly that: one level, on a few pixels per 10^4.
        norm = [op for op in pre if op["type"] == "NormalizeImage"][0]
        one_level = (1 / 255 if norm.get("is_scale", True) else 1.0) / min(norm["std"])
        diff = np.abs(a - b)
        assert diff.max() <= one_level * 1.001 + 1e-5, f"Preprocess #{i}: {diff.max()}"
        assert (diff > 1e-5).mean() < 1e-4, f"Preprocess #{i}: {(diff > 1e-5).mean()}"


SERVE_CONFIG = {
    "pipeline_name": "human_keypoint_detection",
    "SubModules": {
        "ObjectDetection": {
            "module_name": "object_detection",
            "model_name": "PP-YOLOE-S_human",
            "model_dir": None,
            "batch_size": 1,
            "threshold": None,
            "img_size": None,
        },
        "KeypointDetection": {
            "module_name": "keypoint_detection",
            "model_name": "PP-TinyPose_128x96",
            "model_dir": None,
            "batch_size": 1,
            "flip": False,
            "use_udp": None,
        },
    },
}


def test_http_contract_equals_paddlex_serve(paddlex_python, cases, tmp_path):
    """The same request to `paddlex --serve` and to our route: same keys, types and values."""
    label, det, kpt, _, _ = next(c for c in cases if c[0] == ("demo" if demo_present() else "toy"))
    tol = ONEDNN if label == "demo" else STRICT  # our engines follow the bundle manifest here
    conf = json.loads(json.dumps(SERVE_CONFIG))
    conf["SubModules"]["ObjectDetection"]["model_dir"] = str(det)
    conf["SubModules"]["KeypointDetection"]["model_dir"] = str(kpt)
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(conf))
    port = free_port()
    paddlex_bin = str(Path(paddlex_python).parent / "paddlex")
    server = subprocess.Popen(
        [
            paddlex_bin,
            "--serve",
            "--pipeline",
            str(tmp_path / "pipeline.yaml"),
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=paddlex_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    img = scene_image()
    image_b64 = base64.b64encode(cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()).decode()
    try:
        deadline = time.time() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.time() < deadline, "paddlex --serve did not come up"
                time.sleep(1)

        def theirs(body):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/human-keypoint-detection",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read())

        cfg = ServiceConfig(
            deploy="demo-keypoint",
            service="keypoint",
            threads_per_worker=1,
            models={"detector": str(det), "keypoint": str(kpt)},
        )
        client = create_app(cfg, gate=None).test_client()
        for body, drawn in (
            ({"image": image_b64, "detThreshold": 0.3, "visualize": False}, False),
            ({"image": image_b64, "detThreshold": 0.3}, True),
        ):  # PaddleX draws by default
            status, their = theirs(body)
            mine = client.post("/human-keypoint-detection", json=body)
            assert status == mine.status_code == 200, their
            mj = mine.get_json()
            assert set(mj) == set(their) == {"logId", "errorCode", "errorMsg", "result"}
            assert set(mj["result"]) == set(their["result"])
            assert_same_persons(mj["result"]["persons"], their["result"]["persons"], "serve", tol)
            for p, q in zip(mj["result"]["persons"], their["result"]["persons"]):
                assert set(p) == set(q) and all(type(p[k]) is type(q[k]) for k in p)
            assert ("image" in their["result"]) is drawn
            if drawn:
                a = cv2.imdecode(np.frombuffer(base64.b64decode(mj["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
                b = cv2.imdecode(np.frombuffer(base64.b64decode(their["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
                assert a.shape == b.shape
        # a schema error answers 422 on both
        status, their = theirs({"image": image_b64, "detThreshold": "high"})
        mine = client.post("/human-keypoint-detection", json={"image": image_b64, "detThreshold": "high"})
        assert status == mine.status_code == 422 and their["errorCode"] == mine.get_json()["errorCode"] == 422
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
