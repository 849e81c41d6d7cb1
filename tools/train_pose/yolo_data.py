"""Write procedurally generated scenes (scenes.py) as an Ultralytics YOLO pose dataset.

    nice -n 10 python -m tools.train_pose.yolo_data --out /tmp/vp-yolo/data \
        --train-seed 1 --train-scenes 4000 --val-seed 3 --val-scenes 100 --workers 2

Layout (what Ultralytics' pose trainer reads): ``images/{train,val}/<seed>.png`` and
``labels/{train,val}/<seed>.txt``, one line per person ``0 cx cy w h`` + 17 x ``x y v``, all
normalised by the image size, COCO visibility kept (0 = unlabelled, coordinates 0; 1 = hidden;
2 = visible), and ``data.yaml`` (kpt_shape [17, 3], COCO flip_idx, one class ``person``) beside
a ``meta.json`` naming the generator version and seeds.

Scene seeds are ``scene_seed(base_seed, index)`` as the top-down cache's (data.py): base seed 1
is the top-down training set, 3 its validation scenes, 2 the test set evaluate.py reports on
(never written here: the comparison with the top-down demo must be on unseen scenes).
Images are written losslessly (PNG, BGR as cv2 writes) so training sees exactly the pixels the
generator drew; existing files are skipped, so an interrupted run resumes. Needs numpy + cv2
only (the Ultralytics venv or .venv).
"""

from __future__ import annotations

import argparse
import json
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from tools.train_pose import scenes
from tools.train_pose.data import scene_seed

TEST_SEED = 2  # evaluate.py's test scenes: refused here


def label_lines(persons: list[scenes.Person], w: int, h: int) -> list[str]:
    """One YOLO pose line per person: class, normalised xywh box, 17 normalised (x, y, v)."""
    lines = []
    for p in persons:
        x1, y1, x2, y2 = (float(v) for v in p.bbox)
        box = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
        kp = []
        for x, y, v in p.keypoints:
            # v=0 joints carry coordinates 0 (outside the image, as COCO): Ultralytics masks them out
            kp += [float(x) / w, float(y) / h, int(v)]
        fields = ["0"] + [f"{b:.6f}" for b in box] + [f"{v:.6f}" if i % 3 < 2 else str(v) for i, v in enumerate(kp)]
        lines.append(" ".join(fields))
    return lines


def write_scene(job: tuple[str, str, int]) -> int:
    out, split, seed = job
    img_path = Path(out) / "images" / split / f"{seed}.png"
    lab_path = Path(out) / "labels" / split / f"{seed}.txt"
    if img_path.exists() and lab_path.exists():
        return 0
    img, persons = scenes.generate_scene(seed)
    h, w = img.shape[:2]
    lab_path.write_text("\n".join(label_lines(persons, w, h)) + "\n")
    # compression 1: these noisy images hardly compress anyway; level 1 is several times faster
    tmp = img_path.with_suffix(".tmp.png")
    cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    tmp.replace(img_path)
    return len(persons)


def build(out: str, splits: dict[str, tuple[int, int]], workers: int = 2) -> dict:
    root = Path(out)
    meta = {
        "generator_version": scenes.GENERATOR_VERSION,
        "scene_seed": "base_seed * 1_000_000 + index (tools/train_pose/data.py scene_seed)",
        "splits": {k: {"base_seed": s, "scenes": n} for k, (s, n) in splits.items()},
        "format": "ultralytics pose, kpt_shape [17, 3], PNG",
    }
    meta_path = root / "meta.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        same = old["generator_version"] == meta["generator_version"] and all(
            old["splits"].get(k, {}).get("base_seed") == v["base_seed"] for k, v in meta["splits"].items()
        )
        if not same:
            raise SystemExit(f"{out} holds another dataset: {meta_path.read_text()}")
    jobs = []
    for split, (base, n) in splits.items():
        if base == TEST_SEED:
            raise SystemExit(f"base seed {TEST_SEED} is evaluate.py's test set; train and validate on others")
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        jobs += [(out, split, scene_seed(base, i)) for i in range(n)]
    with Pool(workers) as pool:
        for done, _ in enumerate(pool.imap_unordered(write_scene, jobs, chunksize=8), 1):
            if done % 500 == 0:
                print(f"{done}/{len(jobs)} scenes", flush=True)
    # Ultralytics lists images/<split>/ itself; scenes beyond --*-scenes from an earlier, larger run
    # would be trained on too, so the count is part of the meta and checked by the trainer.
    counts = {k: len(list((root / "images" / k).glob("*[0-9].png"))) for k in splits}
    meta["images"] = counts
    meta["persons"] = {
        k: sum(len(p.read_text().split()) // 56 for p in (root / "labels" / k).glob("*.txt")) for k in splits
    }
    flip_idx = [int(i) for i in np.asarray(scenes.FLIP_INDEX)]
    (root / "data.yaml").write_text(
        f"path: {root.resolve()}\ntrain: images/train\nval: images/val\n"
        f"kpt_shape: [17, 3]\nflip_idx: {flip_idx}\nnames:\n  0: person\n"
    )
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--train-scenes", type=int, default=4000)
    ap.add_argument("--val-seed", type=int, default=3)
    ap.add_argument("--val-scenes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    meta = build(a.out, {"train": (a.train_seed, a.train_scenes), "val": (a.val_seed, a.val_scenes)}, a.workers)
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
