"""YOLOv8-pose benchmark (issue 17): our service end to end vs Ultralytics' own ``predict``, one run, JSON on stdout.

    nice -n 10 .venv/bin/python benchmarks/bench_yolo_pose.py [--size 640] [--runs 30] [--seconds 20]

Same model, same image, same letterbox size: yolov8n-pose.yaml built with a fixed seed by Ultralytics
(its test venv, tools/dev/ultralytics_venv.sh; the model of tests/integration/test_ultralytics_compat.py),
exported by Ultralytics to ONNX. The image is square, so Ultralytics' ``.pt`` predict (which pads only
to a stride multiple) letterboxes to the same size as the export.

- ``ultralytics``: ``predict`` on the ``.pt`` (torch CPU) and on the ONNX export (ONNX Runtime), p50/p95
  of one client, and images/s with ``--clients`` threads (a model each).
- ``ours``: the keypoint service's ``POST /<deploy>/predict`` through the Flask app in this process
  (base64 decode, letterbox, ONNX Runtime, NMS, JSON encode; no HTTP socket), 2 engine threads; p50/p95
  of one client and requests/s with ``--clients`` threads sharing the one app (one worker: requests
  queued behind a busy engine run as one batch when the export has a batch dimension).
- ``ratios``: ours p50 / Ultralytics ONNX p50 (target <= 0.8) and / ``.pt`` p50 (target <= 1.0).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "package"), str(REPO)]

from tests.integration.test_ultralytics_compat import ultralytics_env  # noqa: E402
from visionpack.api.app import create_app  # noqa: E402
from visionpack.config import ServiceConfig  # noqa: E402

DEPLOY = "bench-yolo-pose"


def scene(size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.resize(rng.integers(0, 255, (size // 8, size // 8, 3), np.uint8), (size, size), cv2.INTER_CUBIC)


def ours(model_dir: str, image_b64: str, runs: int, seconds: float, clients: int, conf: float) -> dict[str, float]:
    cfg = ServiceConfig(
        deploy=DEPLOY, service="keypoint", models={"pose": model_dir}, backend="onnxruntime", threads_per_worker=2
    )
    app = create_app(cfg, gate=None)
    client = app.test_client()
    body = {"image": image_b64, "conf": conf}
    for _ in range(3):
        client.post(f"/{DEPLOY}/predict", json=body)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        assert client.post(f"/{DEPLOY}/predict", json=body).status_code == 200
        times.append((time.perf_counter() - t) * 1000)
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        c = app.test_client()  # one worker's service and engine, shared by the clients' threads
        while time.perf_counter() < stop:
            c.post(f"/{DEPLOY}/predict", json=body)
            done[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p50, p95 = np.percentile(times, [50, 95])
    return {
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "runs": runs,
        "rps_clients": round(sum(done) / (time.perf_counter() - started), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--conf", type=float, default=0.25)
    a = ap.parse_args()
    python = subprocess.run(
        ["bash", str(REPO / "tools/dev/ultralytics_venv.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    side = str(REPO / "tests/ultralytics_side.py")
    with tempfile.TemporaryDirectory(prefix="bench-yolo-") as tmp_dir:
        tmp = Path(tmp_dir)
        env = ultralytics_env(tmp, python)
        out = tmp / "exports"
        # Ultralytics logs to stdout: to stderr here, so stdout stays this script's JSON.
        quiet = {"check": True, "env": env, "cwd": tmp, "stdout": sys.stderr}
        subprocess.run([python, side, "export", str(out), "0", str(a.size)], **quiet)
        exports = json.loads((out / "exports.json").read_text())
        onnx = exports[f"k17-{a.size}-onnx17"]
        img = tmp / "scene.png"
        cv2.imwrite(str(img), scene(a.size))
        job = {
            "models": {"pt": onnx["pt"], "onnx": onnx["file"]},
            "image": str(img),
            "imgsz": a.size,
            "conf": a.conf,
            "warmup": 3,
            "runs": a.runs,
            "seconds": a.seconds,
            "clients": a.clients,
            "out": str(tmp / "ultra.json"),
        }
        (tmp / "job.json").write_text(json.dumps(job))
        subprocess.run([python, side, "bench", str(tmp / "job.json")], **quiet)
        ultra = json.loads((tmp / "ultra.json").read_text())
        mine = ours(onnx["dir"], base64.b64encode(img.read_bytes()).decode(), a.runs, a.seconds, a.clients, a.conf)
    result = {
        "size": a.size,
        "cores": os.cpu_count(),
        "ultralytics": ultra,
        "ours": mine,
        "ratios": {
            "ours_p50_over_ultralytics_onnx_p50": round(mine["p50_ms"] / ultra["onnx"]["p50_ms"], 3),
            "ours_p50_over_ultralytics_pt_p50": round(mine["p50_ms"] / ultra["pt"]["p50_ms"], 3),
            "ours_rps_over_ultralytics_onnx_rps": round(mine["rps_clients"] / ultra["onnx"]["rps_clients"], 3),
        },
        "targets": {"ours_p50_over_ultralytics_onnx_p50": 0.8, "ours_p50_over_ultralytics_pt_p50": 1.0},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
