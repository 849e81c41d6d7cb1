"""The keypoint service on real Paddle exports: toy bundles exported here (and the demo bundles
under models/ when they are in the tree), through create_app with the real engine, and the seed
000 Python client against a real gunicorn on 127.0.0.1.

The toy bundles keep the exact PaddleX contracts: the detector takes ``image`` +
``scale_factor`` (+ ``im_shape`` in one variant) and returns ``[N,6]`` rows in original-image
pixels plus per-image counts; the pose model takes ``image`` [N,3,128,96] and returns smooth
single-peak heatmaps [N,17,32,24] (peaks at sub-cell positions computed from the crop) plus
the int64 argmax, as PP-TinyPose exports do.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.paths import SEEDS
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig

REPO = Path(__file__).resolve().parents[2]
DEMO_DET, DEMO_KPT = REPO / "models" / "person_det_synthetic", REPO / "models" / "tinypose_synthetic"
SEED = SEEDS / "000_c877a0b373719fa9.txt"
NORM = {"type": "NormalizeImage", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}

EXPORT = textwrap.dedent('''
    import sys
    import numpy as np
    import paddle

    out, kind = sys.argv[1], sys.argv[2]
    paddle.seed(7)
    F = paddle.nn.functional


    class ToyDet(paddle.nn.Layer):
        """24 anchors on a grid of the 320x320 frame, nudged and scored from pooled pixels."""

        def __init__(self, with_shape):
            super().__init__()
            self.with_shape = with_shape
            self.fc = paddle.nn.Linear(48, 24 * 5)
            g = np.stack(np.meshgrid(np.linspace(30, 290, 6), np.linspace(60, 260, 4)), -1).reshape(-1, 2)
            wh = np.array([[24 + 6 * (i % 5), 70 + 9 * (i % 7)] for i in range(24)], np.float32)
            anchors = np.concatenate([g - wh / 2, g + wh / 2], 1).astype(np.float32)
            anchors[0] = [-20, -30, 60, 90]          # hangs over the top-left corner
            anchors[23] = [300, 250, 340, 345]       # hangs over the bottom-right corner
            anchors[5] = [150, 150, 152, 153]        # tiny
            self.anchors = paddle.create_parameter([24, 4], "float32",
                default_initializer=paddle.nn.initializer.Assign(anchors))

        def forward(self, image, scale_factor, im_shape=None):
            f = F.adaptive_avg_pool2d(image, 4).reshape([-1, 48])
            o = self.fc(f).reshape([-1, 24, 5])
            a = self.anchors
            wh = paddle.concat([a[:, 2:] - a[:, :2], a[:, 2:] - a[:, :2]], 1)
            boxes = a.unsqueeze(0) + paddle.tanh(o[:, :, :4]) * 0.1 * wh.unsqueeze(0)  # tiny stays tiny
            if self.with_shape:  # real decoders clip to the network-frame image size
                hw = im_shape.unsqueeze(1)
                x1 = paddle.clip(boxes[:, :, 0], min=0)
                y1 = paddle.clip(boxes[:, :, 1], min=0)
                x2 = paddle.minimum(boxes[:, :, 2], hw[:, :, 1])
                y2 = paddle.minimum(boxes[:, :, 3], hw[:, :, 0])
                boxes = paddle.stack([x1, y1, x2, y2], -1)
            sy = scale_factor[:, 0].reshape([-1, 1])
            sx = scale_factor[:, 1].reshape([-1, 1])
            score = F.sigmoid(o[:, :, 4] * 4)
            rows = paddle.stack([paddle.zeros_like(score), score, boxes[:, :, 0] / sx, boxes[:, :, 1] / sy,
                                 boxes[:, :, 2] / sx, boxes[:, :, 3] / sy], -1).reshape([-1, 6])
            num = paddle.sum(paddle.ones_like(score, dtype="int32"), axis=1)
            return rows, num


    class ToyPose(paddle.nn.Layer):
        """One Gaussian per joint at a sub-cell position computed from the crop."""

        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(3 * 8 * 6, 17 * 3)
            ys, xs = np.mgrid[0:32, 0:24].astype(np.float32)
            self.xs = paddle.create_parameter([1, 1, 32, 24], "float32",
                default_initializer=paddle.nn.initializer.Assign(xs[None, None]))
            self.ys = paddle.create_parameter([1, 1, 32, 24], "float32",
                default_initializer=paddle.nn.initializer.Assign(ys[None, None]))

        def forward(self, image):
            f = F.adaptive_avg_pool2d(image, [8, 6]).reshape([-1, 144])
            o = self.fc(f * 4).reshape([-1, 17, 3])
            mx = (F.sigmoid(o[:, :, 0]) * 20 + 2).unsqueeze(-1).unsqueeze(-1)
            my = (F.sigmoid(o[:, :, 1]) * 28 + 2).unsqueeze(-1).unsqueeze(-1)
            amp = (F.sigmoid(o[:, :, 2]) * 0.8 + 0.15).unsqueeze(-1).unsqueeze(-1)
            hm = amp * paddle.exp(-((self.xs - mx) ** 2 + (self.ys - my) ** 2) / 8.0)
            return hm, paddle.argmax(hm.reshape([-1, 17, 32 * 24]), axis=2)


    if kind == "pose":
        net, specs = ToyPose(), [paddle.static.InputSpec([None, 3, 128, 96], "float32", "image")]
    else:
        net = ToyDet(kind == "det_im_shape")
        specs = [paddle.static.InputSpec([None, 3, 320, 320], "float32", "image"),
                 paddle.static.InputSpec([None, 2], "float32", "scale_factor")]
        if kind == "det_im_shape":
            specs.append(paddle.static.InputSpec([None, 2], "float32", "im_shape"))
    net.eval()
    static = paddle.jit.to_static(net, input_spec=specs, full_graph=True)
    paddle.jit.save(static, out + "/inference")
''')

DET_YML = {
    "mode": "paddle",
    "draw_threshold": 0.5,
    "metric": "COCO",
    "arch": "YOLO",
    "min_subgraph_size": 3,
    "Preprocess": [
        {"type": "Resize", "target_size": [320, 320], "keep_ratio": False, "interp": 2},
        NORM,
        {"type": "Permute"},
    ],
    "label_list": ["person"],
    "Global": {"model_name": "PP-YOLOE-S_human"},
}
KPT_YML = {
    "mode": "paddle",
    "draw_threshold": 0.5,
    "metric": "KeyPointTopDownCOCOEval",
    "arch": "HRNet",
    "min_subgraph_size": 3,
    "Preprocess": [{"type": "TopDownEvalAffine", "trainsize": [96, 128]}, NORM, {"type": "Permute"}],
    "label_list": ["person"],
    "Global": {"model_name": "PP-TinyPose_128x96"},
}


def export_toy_bundles(root: Path) -> dict[str, Path]:
    """Export the three toy bundles (in a child interpreter: to_static must not leak modes)."""
    root.mkdir(parents=True, exist_ok=True)
    script = root / "export_toy_pose.py"
    script.write_text(EXPORT)
    out = {}
    for kind, yml in (
        ("det", DET_YML),
        ("det_im_shape", {**DET_YML, "Global": {"model_name": "YOLOv3-DarkNet53"}}),
        ("pose", KPT_YML),
    ):
        d = root / kind
        d.mkdir(exist_ok=True)
        if not (d / "inference.pdiparams").exists():
            proc = subprocess.run([sys.executable, str(script), str(d), kind], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr[-3000:]
            (d / "inference.yml").write_text(yaml.safe_dump(yml, sort_keys=False))
        out[kind] = d
    return out


def demo_present() -> bool:
    return (DEMO_DET / "inference.yml").exists() and (DEMO_KPT / "inference.yml").exists()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return export_toy_bundles(tmp_path_factory.mktemp("toy_pose"))


def bundle_sets(toy) -> dict[str, tuple[Path, Path]]:
    sets = {"toy": (toy["det"], toy["pose"]), "toy_im_shape": (toy["det_im_shape"], toy["pose"])}
    if demo_present():
        sets["demo"] = (DEMO_DET, DEMO_KPT)
    return sets


def cfg_for(det: Path, kpt: Path, **kw) -> ServiceConfig:
    kw = {"port": 8702, "threads_per_worker": 1, **kw}
    return ServiceConfig(
        deploy="demo-keypoint", service="keypoint", models={"detector": str(det), "keypoint": str(kpt)}, **kw
    )


def scene_image() -> np.ndarray:
    """A person-like test picture: the training generator's scene when present, else a composite."""
    sys.path.insert(0, str(REPO))
    try:
        from tools.train_pose.scenes import generate_scene

        img, _ = generate_scene(12345, size=(640, 480), min_persons=3, max_persons=4)
        return img
    except ImportError:
        img = np.full((480, 640, 3), 90, np.uint8)
        for i, x in enumerate(range(80, 600, 130)):
            cv2.ellipse(img, (x, 240), (35, 150), 0, 0, 360, (200 - 30 * i, 60 + 40 * i, 120), -1)
            cv2.circle(img, (x, 80), 25, (230, 190, 160), -1)
        return img
    finally:
        sys.path.remove(str(REPO))


def b64(img: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()).decode()


def test_both_routes_on_real_paddle_exports(toy):
    img = b64(scene_image())
    for name, (det, kpt) in bundle_sets(toy).items():
        client = create_app(cfg_for(det, kpt), gate=None).test_client()
        r = client.post("/human-keypoint-detection", json={"image": img, "detThreshold": 0.2})
        body = r.get_json()
        assert r.status_code == 200, (name, body)
        persons = body["result"]["persons"]
        assert persons, name
        for p in persons:
            k = np.array(p["kpts"])
            assert k.shape == (17, 3) and np.isfinite(k).all()
            assert p["kptScore"] == pytest.approx(k[:, 2].mean(), rel=1e-5)
            assert 0 <= p["bbox"][0] < p["bbox"][2] <= 640 and 0 <= p["bbox"][1] < p["bbox"][3] <= 480
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(body["result"]["image"]), np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (480, 640, 3)
        easy = client.post("/demo-keypoint/HumanKeypointDetection", json={"image": img, "threshold": 0.2}).get_json()
        assert easy["person_num"] == len(persons), name
        first = easy["person_info"][0]["body_parts"]
        assert [first["nose"]["x"], first["nose"]["y"]] == persons[0]["kpts"][0][:2]


def test_engine_inputs_are_matched_by_name(toy):
    from visionpack.services import build_service

    plain = build_service(cfg_for(toy["det"], toy["pose"])).pipeline
    shaped = build_service(cfg_for(toy["det_im_shape"], toy["pose"])).pipeline
    assert sorted(plain.det_engine.input_names) == ["image", "scale_factor"]
    assert sorted(shaped.det_engine.input_names) == ["im_shape", "image", "scale_factor"]
    img = scene_image()
    a, b = plain.detect(img, 0.0), shaped.detect(img, 0.0)
    assert len(a) == len(b) == 24
    # Inside the frame both decoders agree; the im_shape one clips its corner anchors itself.
    np.testing.assert_allclose([x.xyxy for x in a[1:23]], [x.xyxy for x in b[1:23]], atol=1e-3)


def test_one_batch_equals_one_crop_at_a_time(toy):
    """Batching the keypoint model changes nothing but speed (PaddleX runs one crop per call)."""
    from visionpack.inference import kpt_transforms as KT
    from visionpack.services import build_service

    pipe = build_service(cfg_for(toy["det"], toy["pose"])).pipeline
    img = scene_image()
    boxes = pipe.detect(img, 0.0)
    kpts, scores = pipe.keypoints(img, boxes)
    assert kpts.shape == (24, 17, 3)
    for i, box in enumerate(boxes):
        c, s = KT.box_to_center_scale([box.xyxy], pipe.kpt_spec.aspect)
        hm = pipe.kpt_engine.run({"image": KT.crop_inputs(img, c, s, pipe.kpt_spec)})[0]
        one, sc = KT.decode(hm, c, s)
        np.testing.assert_allclose(one[0], kpts[i], atol=2e-3, rtol=1e-5)
        assert sc[0] == pytest.approx(scores[i], rel=1e-5)


def test_many_persons_chunked_tiny_and_border_boxes(toy):
    client = create_app(cfg_for(toy["det"], toy["pose"], options={"kpt_batch": 7}), gate=None).test_client()
    body = client.post(
        "/human-keypoint-detection", json={"image": b64(scene_image()), "detThreshold": 0.0, "visualize": False}
    ).get_json()
    persons = body["result"]["persons"]
    assert len(persons) == 24 and "image" not in body["result"]
    boxes = np.array([p["bbox"] for p in persons])
    assert (boxes[:, 0] == 0).any() and (boxes[:, 2] == 640).any()  # clipped at the borders
    assert ((boxes[:, 2] - boxes[:, 0]) < 10).any()  # the tiny one
    assert all(np.isfinite(np.array(p["kpts"])).all() for p in persons)


def test_flip_test_on_the_real_engine(toy):
    img = b64(scene_image())
    on = create_app(cfg_for(toy["det"], toy["pose"], options={"flip": True}), gate=None).test_client()
    off = create_app(cfg_for(toy["det"], toy["pose"]), gate=None).test_client()
    a = on.post("/human-keypoint-detection", json={"image": img, "detThreshold": 0.3}).get_json()["result"]["persons"]
    b = off.post("/human-keypoint-detection", json={"image": img, "detThreshold": 0.3}).get_json()["result"]["persons"]
    assert [p["bbox"] for p in a] == [p["bbox"] for p in b]
    assert not np.allclose(np.array(a[0]["kpts"]), np.array(b[0]["kpts"]))  # the toy is not mirror-symmetric


def test_concurrent_requests_get_the_answers_sequential_ones_get(toy):
    """Two engines, two locks: requests overlap between stages but never inside a predictor."""
    from concurrent.futures import ThreadPoolExecutor

    app = create_app(cfg_for(toy["det"], toy["pose"], options={"kpt_batch": 5}), gate=None)
    rng = np.random.default_rng(3)
    base = scene_image()
    images = [b64(np.clip(base.astype(int) + rng.integers(-40, 40, 3), 0, 255).astype(np.uint8)) for _ in range(6)]

    def ask(img):
        body = {"image": img, "detThreshold": 0.2, "visualize": False}
        return app.test_client().post("/human-keypoint-detection", json=body).get_json()["result"]["persons"]

    sequential = [ask(img) for img in images]
    with ThreadPoolExecutor(6) as pool:
        concurrent = list(pool.map(ask, images * 2))
    assert concurrent == sequential * 2


# --- the seed's Python client against gunicorn ------------------------------------------------


def seed_client_code() -> str:
    """The Python example of the seed's serving section, verbatim."""
    text = SEED.read_text(encoding="utf-8")
    start = text.index("import base64\nimport requests")
    end = text.index('print(result["persons"])', start) + len('print(result["persons"])')
    return text[start:end] + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_seed_client_works_unchanged_against_gunicorn(toy, tmp_path):
    det, kpt = bundle_sets(toy).get("demo", (toy["det"], toy["pose"]))
    port = free_port()
    cfg = cfg_for(det, kpt, port=port, run_dir=str(tmp_path / "run"), options={"det_threshold": 0.1})
    conf = tmp_path / "config.yml"
    conf.write_text(yaml.safe_dump(cfg.to_dict()))
    env = dict(os.environ, VISIONPACK_CONFIG=str(conf), PYTHONPATH=str(REPO / "package"))
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "120",
            "visionpack.api.app:create_app()",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "gunicorn did not become ready"
            time.sleep(0.5)
        code = seed_client_code()
        assert 'API_URL = "http://localhost:8080/human-keypoint-detection"' in code
        # Only the address changes: the seed's server listens on localhost:8080, ours on a free port.
        code = code.replace("http://localhost:8080", f"http://127.0.0.1:{port}")
        cv2.imwrite(str(tmp_path / "demo.jpg"), cv2.cvtColor(scene_image(), cv2.COLOR_RGB2BGR))
        (tmp_path / "client.py").write_text(code)
        proc = subprocess.run([sys.executable, "client.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Output image saved at ./out.jpg" in proc.stdout and "Detected persons:" in proc.stdout
        out = cv2.imread(str(tmp_path / "out.jpg"))
        assert out is not None and out.shape == (480, 640, 3)
        printed = proc.stdout.split("Detected persons:\n", 1)[1].strip()
        persons = json.loads(printed.replace("'", '"'))
        assert persons and len(persons[0]["kpts"]) == 17
    finally:
        server.terminate()
        server.wait(30)
