"""Training data cache: scenes rendered once into shards, feeding both trainings.

Per shard (``shard_<k>.npz``, ``SHARD`` scenes) it stores
- detector samples: the scene resized to 320x320 the way a Resize op does (keep_ratio false,
  cubic), with person boxes in resized pixels (train_det.py area-downsamples to its input size);
- keypoint samples: for every person with >= 3 labelled keypoints, ``CROPS_PER_PERSON``
  top-down crops made the PaddleX way (box -> 96:128 aspect -> x1.25 -> affine warp) from a
  jittered ground-truth box (standing in for detector boxes), some rotated, with the keypoints
  in crop pixels.
Shards are written atomically and skipped when present, so an interrupted build resumes.
Scene seeds are ``base_seed * 1_000_000 + index``: a different base seed gives disjoint scenes.
"""

from __future__ import annotations

import argparse
import json
import os
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from tools.train_pose import scenes, topdown

SHARD = 200
CROPS_PER_PERSON = 2
DET_SIZE = 320


def scene_seed(base_seed: int, index: int) -> int:
    return base_seed * 1_000_000 + index


def jitter_box(rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    """A ground-truth box disturbed like a decent detector's output."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + rng.normal(0, 0.04) * w
    cy = (y1 + y2) / 2 + rng.normal(0, 0.04) * h
    s = np.exp(rng.normal(0, 0.08))
    w, h = w * s * np.exp(rng.normal(0, 0.05)), h * s * np.exp(rng.normal(0, 0.05))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def make_shard(args: tuple[str, int, int]) -> str:
    out_dir, base_seed, shard = args
    path = Path(out_dir) / f"shard_{shard:04d}.npz"
    if path.exists():
        return str(path)
    det_imgs, det_boxes, det_count = [], [], []
    crops, crop_kpts = [], []
    for i in range(shard * SHARD, (shard + 1) * SHARD):
        seed = scene_seed(base_seed, i)
        img, persons = scenes.generate_scene(seed)
        h, w = img.shape[:2]
        det_imgs.append(cv2.resize(img, (DET_SIZE, DET_SIZE), interpolation=cv2.INTER_CUBIC))
        sx, sy = DET_SIZE / w, DET_SIZE / h
        det_count.append(len(persons))
        for p in persons:
            det_boxes.append(p.bbox * np.float32([sx, sy, sx, sy]))
        rng = np.random.default_rng(seed + 7)
        for p in persons:
            k = p.keypoints
            if (k[:, 2] > 0).sum() < 3:
                continue
            for _ in range(CROPS_PER_PERSON):
                box = jitter_box(rng, p.bbox)
                center, scale = topdown.box_to_center_scale(box)
                rot = float(rng.uniform(-25, 25)) if rng.random() < 0.3 else 0.0
                crop, trans = topdown.warp_crop(img, center, scale, rot)
                kin = np.zeros((17, 3), np.float32)
                kin[:, :2] = topdown.apply_affine(k[:, :2], trans)
                kin[:, 2] = k[:, 2]
                crops.append(crop)
                crop_kpts.append(kin)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        det_imgs=np.stack(det_imgs),
        det_boxes=np.array(det_boxes, np.float32).reshape(-1, 4),
        det_count=np.array(det_count, np.int32),
        crops=np.stack(crops).astype(np.uint8),
        crop_kpts=np.stack(crop_kpts).astype(np.float32),
    )
    os.replace(tmp, path)
    return str(path)


def build(out_dir: str, base_seed: int, n_scenes: int, workers: int = 2) -> list[str]:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    meta = {
        "generator_version": scenes.GENERATOR_VERSION,
        "base_seed": base_seed,
        "shard": SHARD,
        "crops_per_person": CROPS_PER_PERSON,
    }
    meta_path = Path(out_dir) / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        raise SystemExit(f"{out_dir} holds a cache built with other settings: {meta_path.read_text()}")
    meta_path.write_text(json.dumps(meta))
    jobs = [(out_dir, base_seed, k) for k in range((n_scenes + SHARD - 1) // SHARD)]
    with Pool(workers) as pool:
        paths = []
        for p in pool.imap(make_shard, jobs):
            paths.append(p)
            print("shard", p, flush=True)
    return paths


def load(
    out_dir: str | list[str], max_shards: int | None = None, keys: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Concatenate the shards present (in order, cache after cache); det_offsets index det_boxes per scene.

    ``keys`` loads only those arrays (a detector run needs no crops): two 16000-scene caches hold
    ~8 GB, which two side-by-side runs could not both keep.
    """
    dirs = [out_dir] if isinstance(out_dir, str) else list(out_dir)
    paths = [p for d in dirs for p in sorted(Path(d).glob("shard_[0-9][0-9][0-9][0-9].npz"))][:max_shards]
    if not paths:
        raise SystemExit(f"no shards in {', '.join(dirs)}")
    parts = []
    for p in paths:
        with np.load(p) as z:
            parts.append({k: z[k] for k in (keys or z.files)})
    out = {k: np.concatenate([q[k] for q in parts]) for k in parts[0]}
    if "det_count" in out:
        out["det_offsets"] = np.concatenate([[0], np.cumsum(out["det_count"])]).astype(np.int64)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenes", type=int, default=6000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    build(a.out, a.seed, a.scenes, a.workers)


if __name__ == "__main__":
    main()
