"""Run inside the Ultralytics test venv (tools/dev/ultralytics_venv.sh), never imported by the suite: build
YOLOv8-pose models from Ultralytics' own yaml with a fixed seed, export them with Ultralytics itself, and
answer Ultralytics' ``predict`` on them as JSON, for tests/integration/test_ultralytics_compat.py.

    python ultralytics_side.py export OUT_DIR SEED SIZE [SIZE...]   -> OUT_DIR/exports.json
    python ultralytics_side.py predict JOB.json                     -> JOB's "out" file
    python ultralytics_side.py bench JOB.json                       -> JOB's "out" file (benchmarks/bench_yolo_pose.py)

Offline: the caller sets YOLO_OFFLINE=1 and YOLO_CONFIG_DIR with a font planted in it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def build(seed: int, kpt_shape: list[int] | None, where: Path) -> Any:
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils import ROOT

    torch.manual_seed(seed)
    cfg = yaml.safe_load((ROOT / "cfg" / "models" / "v8" / "yolov8-pose.yaml").read_text())
    name = "yolov8n-pose.yaml"
    if kpt_shape is not None:
        cfg["kpt_shape"] = kpt_shape
        name = f"yolov8n-pose-k{kpt_shape[0]}x{kpt_shape[1]}.yaml"
    cfg_file = where / name
    cfg_file.write_text(yaml.safe_dump(cfg))
    model = YOLO(str(cfg_file))
    # A fresh model scores every anchor of a level alike (its class conv starts from a bias): seeded
    # noise on every weight, and larger box/class head convs, give hundreds of distinct persons.
    g = torch.Generator().manual_seed(seed)
    head = model.model.model[-1]
    with torch.no_grad():
        for p in model.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        for branch in (head.cv2, head.cv3):
            for seq in branch:
                seq[-1].weight.mul_(8.0)
    return model


def export(out: Path, seed: int, sizes: list[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    for label, kpt in (("k17", None), ("k5x2", [5, 2])):
        work = out / f"work-{label}"
        work.mkdir(exist_ok=True)
        model = build(seed, kpt, work)
        pt = work / f"{label}.pt"
        model.save(str(pt))
        for size in sizes if kpt is None else sizes[:1]:
            for fmt, opset in (("onnx", 12), ("onnx", 17), ("paddle", None)):
                if kpt is not None and fmt == "paddle":
                    continue
                started = time.perf_counter()
                kw: dict[str, Any] = {"format": fmt, "imgsz": size}
                if opset is not None:
                    kw["opset"] = opset
                from ultralytics import YOLO

                made = Path(YOLO(str(pt)).export(**kw))
                key = f"{label}-{size}-{fmt}{opset or ''}"
                dest = out / key
                if dest.exists():
                    shutil.rmtree(dest)
                dest.mkdir()
                shutil.move(str(made), dest / made.name)
                done[key] = {
                    "dir": str(dest),
                    "file": str(dest / made.name),
                    "pt": str(pt),
                    "imgsz": size,
                    "seconds": round(time.perf_counter() - started, 2),
                }
    (out / "exports.json").write_text(json.dumps(done, indent=1))


def paddle_without_onednn() -> None:
    """Ultralytics' Paddle backend leaves oneDNN on, and paddle 3.3.1 then fails at run() on these graphs
    (reference/ultralytics-pose.md): its predict runs with oneDNN off, as our service does."""
    import paddle.inference as pdi

    create = pdi.create_predictor

    def without(config: Any) -> Any:
        config.disable_mkldnn()
        return create(config)

    pdi.create_predictor = without


def ort_threads(n: int) -> None:
    """Ultralytics' ONNX backend opens its session with ONNX Runtime's default threads (the cores):
    pinned to the service's count, so both sides sum in the same order on any machine."""
    import onnxruntime as ort

    base = ort.InferenceSession

    class Pinned(base):  # type: ignore[misc, valid-type]
        def __init__(self, path: Any, sess_options: Any = None, providers: Any = None, **kw: Any) -> None:
            options = sess_options or ort.SessionOptions()
            options.intra_op_num_threads = n
            options.inter_op_num_threads = 1
            super().__init__(path, sess_options=options, providers=providers, **kw)

    ort.InferenceSession = Pinned


def predict(job_file: Path) -> None:
    from ultralytics import YOLO

    paddle_without_onednn()
    ort_threads(2)

    job = json.loads(job_file.read_text())
    answers: dict[str, Any] = {}
    for key, model_file in job["models"].items():
        model = YOLO(model_file, task="pose")
        per_image = []
        for image in job["images"]:
            (r,) = model.predict(image, conf=job["conf"], imgsz=job["imgsz"][key], verbose=False)
            kp = r.keypoints
            per_image.append(
                {
                    "boxes": r.boxes.xyxy.cpu().numpy().tolist(),
                    "conf": r.boxes.conf.cpu().numpy().tolist(),
                    "cls": r.boxes.cls.cpu().numpy().tolist(),
                    "kpts": kp.data.cpu().numpy().tolist() if kp is not None else [],
                    "json": json.loads(r.to_json()),
                }
            )
        answers[key] = per_image
    Path(job["out"]).write_text(json.dumps(answers))


def _client(model: Any, image: str, kw: dict[str, Any], stop: float, done: list[int], i: int) -> None:
    while time.perf_counter() < stop:
        model.predict(image, **kw)
        done[i] += 1


def bench(job_file: Path) -> None:
    """p50/p95 of ``predict`` on one image (one client), and images/s with ``clients`` threads,
    each with its own model (a YOLO object is not shared between threads)."""
    import threading

    import numpy as np
    from ultralytics import YOLO

    job = json.loads(job_file.read_text())
    out: dict[str, Any] = {}
    for key, model_file in job["models"].items():
        model = YOLO(model_file, task="pose")
        kw = {"conf": job["conf"], "imgsz": job["imgsz"], "verbose": False}
        for _ in range(job["warmup"]):
            model.predict(job["image"], **kw)
        times = []
        for _ in range(job["runs"]):
            t = time.perf_counter()
            model.predict(job["image"], **kw)
            times.append((time.perf_counter() - t) * 1000)
        models = [YOLO(model_file, task="pose") for _ in range(job["clients"])]
        for m in models:
            m.predict(job["image"], **kw)
        done = [0] * len(models)
        stop = time.perf_counter() + job["seconds"]
        started = time.perf_counter()
        threads = [
            threading.Thread(target=_client, args=(m, job["image"], kw, stop, done, i)) for i, m in enumerate(models)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        p50, p95 = np.percentile(times, [50, 95])
        out[key] = {
            "p50_ms": round(float(p50), 2),
            "p95_ms": round(float(p95), 2),
            "runs": len(times),
            "rps_clients": round(sum(done) / (time.perf_counter() - started), 2),
        }
    Path(job["out"]).write_text(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(Path(sys.argv[2]), int(sys.argv[3]), [int(s) for s in sys.argv[4:]])
    elif sys.argv[1] == "bench":
        bench(Path(sys.argv[2]))
    else:
        predict(Path(sys.argv[2]))
