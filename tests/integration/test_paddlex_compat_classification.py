"""PaddleX itself vs our service on the demo classification bundle: same photos, same answers.

PaddleX 3.7.2 runs in its own environment (tools/paddlex_env.sh -> .paddlex-venv, built on first
use, never imported here) in a child process: ``paddlex.create_model(model_name=<Global.model_name
of the bundle>, model_dir=<bundle>)``, fed the same image files. Our side is the real service
(``create_app`` with the Paddle engine) answering both dialects. Both run Paddle Inference 3.3.1
with the bundle's verified oneDNN setting, so a difference is a difference in pre/post-processing.

Passing proves three things: PaddleX loads the bundle as one of its own exports; our yml-driven
pipeline gives PaddleX's top-5 ids, names and (5-decimal) scores; and our PaddleX-dialect
response validates against PaddleX serving's own pydantic schema for image classification.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from visionpack.api.app import create_app
from visionpack.bundle import load_bundle
from visionpack.config import ServiceConfig

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "models" / "efficientnet_lite0_imagenet"
SAMPLES = REPO / "package" / "samples"
DEPLOY = "compat-classify"
# Both sides round to 5 decimals (PaddleX's Topk); allow one unit of the last place for a
# value sitting on a rounding boundary after last-bit differences between thread counts.
SCORE_ATOL = 1e-5 + 1e-9

RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import paddlex
    from paddlex.inference import PaddlePredictorOption

    job = json.loads(open(sys.argv[1]).read())
    opt = PaddlePredictorOption(device_type="cpu", cpu_threads=job["threads"],
                                run_mode="mkldnn" if job["onednn"] else "paddle")
    model = paddlex.create_model(model_name=job["model_name"], model_dir=job["bundle"], device="cpu",
                                 pp_option=opt)
    out = {"predictor": type(model._predictor).__name__ if hasattr(model, "_predictor") else type(model).__name__,
           "images": []}
    for path in job["images"]:
        res = list(model.predict(path, topk=5))[0]
        # PaddleX 3.7.2 hands each image the (1, k) id array of its batch (BasePredictor.apply only
        # splits lists); flatten it, which is what its serving app would need as well.
        out["images"].append({"class_ids": np.asarray(res["class_ids"]).reshape(-1).tolist(),
                              "scores": np.asarray(res["scores"], dtype=np.float64).reshape(-1).tolist(),
                              "label_names": list(res["label_names"])})
    # Our PaddleX-dialect responses, checked against PaddleX serving's own response models.
    from paddlex.inference.serving.infra.models import AIStudioResultResponse
    from paddlex.inference.serving.schemas.image_classification import InferResult
    out["schema_errors"] = []
    for body in job["our_paddlex_bodies"]:
        try:
            AIStudioResultResponse[InferResult].model_validate(body)
        except Exception as exc:
            out["schema_errors"].append(str(exc)[:500])
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def paddlex_python() -> str:
    # Builds the env on first use (a few minutes, serialised by the script's lock), then reuses it.
    proc = subprocess.run(["bash", str(REPO / "tools" / "paddlex_env.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not (BUNDLE / "inference.json").exists():
        # The test command runs download.sh first; build here too so the test never skips.
        proc = subprocess.run(
            [
                sys.executable,
                str(REPO / "tools" / "convert" / "build_models.py"),
                "--sources",
                str(REPO / "original" / "sources"),
                "--out",
                str(REPO / "models"),
                "--only",
                BUNDLE.name,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return BUNDLE


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """The bundled sample photographs, plus re-encodings that exercise other code paths."""
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    out = sorted(SAMPLES.glob("*.jpg"))
    assert len(out) >= 3, f"sample photographs missing under {SAMPLES}"
    extra = {
        # the benchmark image: 640x480 JPEG
        "coffee_640x480.jpg": cv2.resize(data.coffee(), (640, 480), interpolation=cv2.INTER_AREA),
        # portrait, lossless: resize_short on the width
        "rocket.png": data.rocket(),
        # odd short side (301): the rounding of the resized long side decides the crop window
        "chelsea_odd.png": data.chelsea()[:301, :449],
    }
    for name, rgb in extra.items():
        path = d / name
        params = [cv2.IMWRITE_JPEG_QUALITY, 90] if name.endswith(".jpg") else []
        assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        out.append(path)
    return out


@pytest.fixture(scope="module")
def ours(bundle, photos, tmp_path_factory):
    """Our service's answers (both dialects) for every photo, from the real app and engine."""
    run = tmp_path_factory.mktemp("run")
    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(bundle)}, run_dir=str(run))
    client = create_app(cfg, gate=None).test_client()
    answers = []
    for path in photos:
        b64 = base64.b64encode(path.read_bytes()).decode("ascii")
        easydl = client.post(f"/{DEPLOY}/ImageClassification", json={"image": b64, "top_num": 5})
        paddlex = client.post("/image-classification", json={"image": b64, "topk": 5})
        assert easydl.status_code == 200, easydl.get_data(as_text=True)
        assert paddlex.status_code == 200, paddlex.get_data(as_text=True)
        answers.append({"easydl": easydl.get_json(), "paddlex": paddlex.get_json()})
    return answers


@pytest.fixture(scope="module")
def theirs(paddlex_python, bundle, photos, ours, tmp_path_factory):
    d = tmp_path_factory.mktemp("paddlex")
    b = load_bundle(bundle)
    job = {
        "bundle": str(bundle),
        "model_name": b.model_name,
        "images": [str(p) for p in photos],
        "onednn": b.onednn_default,
        "threads": ServiceConfig().effective_threads(),
        "our_paddlex_bodies": [a["paddlex"] for a in ours],
    }
    (d / "job.json").write_text(json.dumps(job))
    (d / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK="True", GLOG_minloglevel="2")
    proc = subprocess.run(
        [paddlex_python, str(d / "runner.py"), str(d / "job.json")],
        capture_output=True,
        text=True,
        env=env,
        cwd=d,
        timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT ") :])


def test_paddlex_loads_the_bundle_as_a_classification_export(theirs, photos):
    assert theirs["predictor"] == "ClasRunnerPredictor"
    assert len(theirs["images"]) == len(photos)


def test_top5_ids_names_and_scores_equal_paddlex(ours, theirs, photos):
    for path, mine, ref in zip(photos, ours, theirs["images"]):
        cats = mine["paddlex"]["result"]["categories"]
        assert [c["id"] for c in cats] == ref["class_ids"], path.name
        assert [c["name"] for c in cats] == ref["label_names"], path.name
        np.testing.assert_allclose(
            [c["score"] for c in cats], ref["scores"], rtol=0, atol=SCORE_ATOL, err_msg=path.name
        )
        # The EasyDL dialect carries the same ranking, names and scores.
        res = mine["easydl"]["results"]
        assert [r["name"] for r in res] == ref["label_names"], path.name
        np.testing.assert_allclose([r["score"] for r in res], ref["scores"], rtol=0, atol=SCORE_ATOL, err_msg=path.name)


def test_answers_are_sensible_imagenet_labels(theirs, photos):
    # Guards against both sides agreeing on garbage (e.g. a wrong channel order everywhere).
    expected = {"cat.jpg": "cat", "coffee.jpg": "espresso", "coffee_640x480.jpg": "espresso"}
    for path, ref in zip(photos, theirs["images"]):
        if path.name in expected:
            assert any(expected[path.name] in n for n in ref["label_names"][:3]), (path.name, ref["label_names"])


def test_our_paddlex_dialect_validates_against_paddlex_serving_schema(theirs):
    assert theirs["schema_errors"] == []


def test_photos_batched_together_get_the_answers_they_get_alone(bundle, photos, ours, tmp_path):
    """Opportunistic batching (inference/batching.py) on the real engine changes no answer."""
    import threading
    import time

    cfg = ServiceConfig(deploy=DEPLOY, models={"classifier": str(bundle)}, run_dir=str(tmp_path / "run"))
    app = create_app(cfg, gate=None)
    service = app.extensions["visionpack"].service
    real_run, hold, shapes = service.engine.run, threading.Event(), []

    def held_run(feeds):
        shapes.append(feeds[service.input_name].shape[0])
        if len(shapes) == 1:
            hold.wait(60)  # keep the engine busy until every other photo has queued
        return real_run(feeds)

    service.engine.run = held_run
    answers: dict[int, dict] = {}

    def ask(i: int) -> None:
        b64 = base64.b64encode(photos[i].read_bytes()).decode("ascii")
        answers[i] = app.test_client().post("/image-classification", json={"image": b64, "topk": 5}).get_json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(photos))]
    threads[0].start()
    deadline = time.monotonic() + 60
    while not shapes:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    while len(service.batcher._queue) < len(photos) - 1:
        assert time.monotonic() < deadline, "photos never queued behind the busy engine"
        time.sleep(0.01)
    hold.set()
    for t in threads:
        t.join(120)
    assert shapes[0] == 1 and max(shapes) == cfg.max_batch and sum(shapes) == len(photos)
    for i, path in enumerate(photos):
        mine = answers[i]["result"]["categories"]
        alone = ours[i]["paddlex"]["result"]["categories"]
        assert [c["id"] for c in mine] == [c["id"] for c in alone], path.name
        np.testing.assert_allclose(
            [c["score"] for c in mine], [c["score"] for c in alone], rtol=0, atol=SCORE_ATOL, err_msg=path.name
        )
