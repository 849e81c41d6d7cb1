"""Shared training plumbing: thread limits, seeding, LR schedule, checkpoints, logging, colour jitter."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

# Network widths, shared by models.py (paddle, export) and torch_models.py (training) so the two
# cannot drift apart. v2 bundles: about 2x the first bundles' widths, affordable once training
# moved to torch (docs/pose-models.md).
DET_WIDTH, DET_CHANNELS = 96, (32, 64, 128, 256)
KPT_CHANNELS = (48, 96, 192)
# Detector input (square). v3 bundles: 320, the scene cache's detector resolution, fine-tuned from
# the 192-px v2 weights (the net is fully convolutional); at 192 the stride-8 grid was too coarse
# for the amodal boxes of small figures (docs/pose-models.md). Shared by train_det (targets),
# models (graph), export (yml Resize) and transfer (parity batch) so they cannot disagree.
DET_SIZE = 320


def limit_threads(n: int) -> None:
    """Cap math-library threads (the build machine is shared); call before importing paddle."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import cv2

    cv2.setNumThreads(n)


def step_rng(seed: int, step: int) -> np.random.Generator:
    """Per-step generator: a resumed run draws exactly the batches an uninterrupted one would."""
    return np.random.default_rng([seed, step])


def lr_at(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.02) -> float:
    if step < warmup:
        return base * (0.1 + 0.9 * step / warmup)
    t = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def colour_jitter(rng: np.random.Generator, imgs: np.ndarray) -> np.ndarray:
    """Per-image brightness / contrast / channel-gain jitter, and sometimes grey; uint8 -> uint8."""
    x = imgs.astype(np.float32)
    n = x.shape[0]
    gain = rng.uniform(0.8, 1.2, (n, 1, 1, 3)) * rng.uniform(0.75, 1.25, (n, 1, 1, 1))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1, 1))
    x = (x - mean) * contrast + mean
    x = x * gain + rng.uniform(-20, 20, (n, 1, 1, 1))
    grey = rng.random(n) < 0.1
    if grey.any():
        x[grey] = x[grey].mean(axis=3, keepdims=True)
    return np.clip(x, 0, 255).astype(np.uint8)


class Checkpoints:
    """last.pdparams / last.pdopt / state.json in ``root``; snapshots every so often."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, net: Any, opt: Any, step: int, extra: dict[str, Any]) -> None:
        import paddle

        paddle.save(net.state_dict(), str(self.root / "last.pdparams.tmp"))
        paddle.save(opt.state_dict(), str(self.root / "last.pdopt.tmp"))
        os.replace(self.root / "last.pdparams.tmp", self.root / "last.pdparams")
        os.replace(self.root / "last.pdopt.tmp", self.root / "last.pdopt")
        state = dict(extra, step=step, saved=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.root / "state.json")

    def load(self, net: Any, opt: Any) -> dict[str, Any] | None:
        import paddle

        if not (self.root / "state.json").exists():
            return None
        net.set_state_dict(paddle.load(str(self.root / "last.pdparams")))
        opt.set_state_dict(paddle.load(str(self.root / "last.pdopt")))
        return json.loads((self.root / "state.json").read_text())


def init_from(net: Any, ckpt_dir: str) -> dict[str, Any]:
    """Load another run's final weights (a new training phase); return its provenance."""
    import hashlib

    import paddle

    root = Path(ckpt_dir)
    params = root / "last.pdparams"
    net.set_state_dict(paddle.load(str(params)))
    return {
        "dir": str(root),
        "sha256": hashlib.sha256(params.read_bytes()).hexdigest(),
        "state": json.loads((root / "state.json").read_text()),
    }


class Log:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **rec: Any) -> None:
        rec = {"time": round(time.time(), 1), **rec}
        with self.path.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
