"""Train the demo YOLOv8n-pose on our synthetic figures with Ultralytics, from scratch, and export it with
Ultralytics itself to ONNX and Paddle. Runs inside the Ultralytics venv (tools/dev/ultralytics_venv.sh),
offline; never imported by the package or the suite.

    PY=$(bash tools/dev/ultralytics_venv.sh)
    nice -n 10 $PY -m tools.train_pose.yolo_data --out /tmp/vp-yolo/data --train-scenes 3000
    nice -n 10 $PY -m tools.train_pose.train_yolo train --data /tmp/vp-yolo/data --run /tmp/vp-yolo/run \
        --hours 0.9 --imgsz 320 --seed 1                      # resumable: run it again after a stop
    nice -n 10 $PY -m tools.train_pose.train_yolo export --run /tmp/vp-yolo/run --data /tmp/vp-yolo/data \
        --out models/yolov8n_pose_synthetic

No pretrained weights exist offline, so the model is built from Ultralytics' own
``yolov8n-pose.yaml`` (random init, seeded). ``--hours`` is Ultralytics' ``time`` argument: the trainer
measures its first epoch and sets the number of epochs (and the learning-rate schedule) to fit the
time box, which keeps a shared, loaded machine from running past a deadline. ``export`` copies the
files Ultralytics wrote, unchanged, and writes ``manifest.json`` (data, seeds, recipe, versions, wall
time; evaluate.py --yolo adds the metrics).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

NAME = "yolov8n-pose-synthetic"  # the export files are named after the weights file's stem

# The recipe. Ultralytics' defaults are for GPUs and COCO; what is changed and why:
# - batch 8, nbs 8 (nominal batch 64 by default): Ultralytics would otherwise accumulate 8 batches
#   per optimizer step, leaving only a few hundred steps in the CPU time box;
# - warmup_epochs 1, close_mosaic 2: the time box allows few epochs, and the defaults (3 and 10)
#   would spend most of them warming up or without mosaic;
# - AdamW at lr0 0.002 is what optimizer='auto' picks for a short run; named so the manifest says it;
# - amp off, plots off, workers 2: CPU, 2 cores, no plot fonts; images cached as .npy on disk (Ultralytics
#   warns that a RAM cache may make training non-deterministic).
HYP: dict[str, Any] = {
    "epochs": 100,  # an upper bound: ``time`` decides
    "batch": 8,
    "nbs": 8,
    "optimizer": "AdamW",
    "lr0": 0.002,
    "lrf": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "warmup_epochs": 1.0,
    "close_mosaic": 2,
    "mosaic": 1.0,
    "fliplr": 0.5,
    "scale": 0.5,
    "translate": 0.1,
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "pose": 12.0,
    "kobj": 1.0,
}


def offline_env(cache: Path) -> None:
    """Ultralytics offline: no hub, and a TTF where it would fetch Arial from GitHub (even with plots off)."""
    cfg = cache / "ultralytics-config"
    (cfg / "Ultralytics").mkdir(parents=True, exist_ok=True)
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (cfg / "Ultralytics" / name).exists():
            shutil.copy(font, cfg / "Ultralytics" / name)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(cfg)


def train(data: Path, run: Path, hours: float, imgsz: int, seed: int, workers: int) -> None:
    offline_env(run.parent)
    import torch
    from ultralytics import YOLO

    meta = json.loads((data / "meta.json").read_text())
    last = run / "train" / "weights" / "last.pt"
    started = time.time()
    if last.exists():
        # Ultralytics' own resume: optimizer, epoch, schedule and time box from the checkpoint.
        print(f"resuming {last}", flush=True)
        YOLO(str(last)).train(resume=True)
    else:
        torch.manual_seed(seed)
        model = YOLO("yolov8n-pose.yaml")
        model.train(
            data=str(data / "data.yaml"),
            imgsz=imgsz,
            time=hours,
            device="cpu",
            workers=workers,
            seed=seed,
            deterministic=True,
            amp=False,
            plots=False,
            cache="disk",
            project=str(run),
            name="train",
            exist_ok=True,
            pretrained=False,
            save_period=1,
            val=False,  # the last epoch is validated anyway; evaluate.py measures the test set
            verbose=True,
            **HYP,
        )
    log = run / "wall.json"
    spent = json.loads(log.read_text())["seconds"] if log.exists() else 0.0
    log.write_text(json.dumps({"seconds": round(spent + time.time() - started), "data": meta}))


def export(run: Path, data: Path, out: Path, weights: str) -> None:
    offline_env(run.parent)
    import torch
    import ultralytics
    from ultralytics import YOLO

    src = run / "train" / "weights" / f"{weights}.pt"
    work = run / "export"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    pt = work / f"{NAME}.pt"
    shutil.copy(src, pt)
    ckpt = torch.load(pt, map_location="cpu", weights_only=False)
    args = json.loads(json.dumps(ckpt.get("train_args", {}), default=str))
    made = []
    for fmt in ("onnx", "paddle"):
        # imgsz as trained; opset left to Ultralytics; nms False (the default): the service does NMS
        made.append(Path(YOLO(str(pt)).export(format=fmt, imgsz=args.get("imgsz", 320))))
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.onnx")) + list(out.glob("*_paddle_model")):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    for m in made:
        (shutil.copytree if m.is_dir() else shutil.copy)(m, out / m.name)
    import paddle

    wall = json.loads((run / "wall.json").read_text()) if (run / "wall.json").exists() else {}
    results = run / "train" / "results.csv"
    manifest_path = out / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = {
        "name": "yolov8n_pose_synthetic",
        "kind": "ultralytics-export",
        "task": "pose",
        "demo": "trained on synthetic stick-and-capsule figures only: not for real people",
        # every file of the exports with its sha256: download.sh --verify and the installer check them
        "files": {
            f.relative_to(out).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*"))
            if f.is_file() and f.name != "manifest.json"
        },
        "source": {
            "engine": "ultralytics",
            "model": "yolov8n-pose.yaml (from scratch, no pretrained weights)",
            "data": json.loads((data / "meta.json").read_text()),
            "train_seed": args.get("seed"),
            # a finished run's weights say epoch -1 (Ultralytics strips them): results.csv has a row per epoch
            "epochs_run": len(results.read_text().splitlines()) - 1 if results.exists() else None,
            "epochs": args.get("epochs"),
            "imgsz": args.get("imgsz"),
            "time_box_hours": args.get("time"),
            "hyper_parameters": {k: args.get(k) for k in HYP},
            "train_args": args,
            "weights": f"{weights}.pt",
            "train_wall_seconds": wall.get("seconds"),
            "results_csv_last": results.read_text().splitlines()[-1] if results.exists() else None,
        },
        "export": {
            "formats": ["onnx", "paddle"],
            "ultralytics": ultralytics.__version__,
            "torch": torch.__version__,
            "paddle": paddle.__version__,
            "paddle_caveat": "exported under paddle 3.3: paddle >= 3.3 reads it, 3.2 cannot",
            "python": platform.python_version(),
        },
        "metrics": old.get("metrics", {}),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest["source"] | {"export": manifest["export"]}, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--run", type=Path, required=True)
    t.add_argument("--hours", type=float, default=0.9)
    t.add_argument("--imgsz", type=int, default=320)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--workers", type=int, default=2)
    e = sub.add_parser("export")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--weights", default="last", help="last or best (best: by the final validation only)")
    a = ap.parse_args()
    if a.cmd == "train":
        train(a.data.resolve(), a.run.resolve(), a.hours, a.imgsz, a.seed, a.workers)
    else:
        export(a.run.resolve(), a.data.resolve(), a.out, a.weights)
    sys.exit(0)


if __name__ == "__main__":
    main()
