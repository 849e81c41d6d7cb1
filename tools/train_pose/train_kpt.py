"""Train the demo top-down keypoint model (128x96 -> heatmaps 17x32x24) on the scene cache's crops.

    nice -n 19 .venv/bin/python -m tools.train_pose.train_kpt --cache /tmp/vp_pose/cache_train \
        --out /tmp/vp_pose/kpt --steps 3000

Crops were cut the way PaddleX cuts them at inference (tools/train_pose/topdown.py); here they
get horizontal flips (with left/right joints swapped) and colour jitter. Targets are Gaussian
heatmaps (sigma 2 heatmap px, sub-pixel centres), loss is visibility-weighted MSE. Resumable.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tools.train_pose import common, topdown
from tools.train_pose.scenes import FLIP_INDEX

HYPER = {
    "batch": 32,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "warmup": 50,
    "sigma": 2.0,
    "loss_scale": 1000.0,
    "fg_weight": 0.0,
}


def make_batch(data: dict, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = rng.integers(0, len(data["crops"]), batch)
    return batch_from(data["crops"][idx].copy(), data["crop_kpts"][idx].copy(), rng)


def batch_from(crops: np.ndarray, kpts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Flip (swapping left/right joints), targets, weights and colour jitter for chosen crops (modified in place)."""
    batch = len(crops)
    targets = np.zeros((batch, 17, topdown.HEATMAP_H, topdown.HEATMAP_W), np.float32)
    weights = np.zeros((batch, 17), np.float32)
    for i in range(batch):
        k = kpts[i]
        if rng.random() < 0.5:
            crops[i] = crops[i, :, ::-1]
            k = k[FLIP_INDEX]
            k[:, 0] = (topdown.INPUT_W - 1) - k[:, 0]
        inside = (k[:, 0] >= 0) & (k[:, 0] < topdown.INPUT_W) & (k[:, 1] >= 0) & (k[:, 1] < topdown.INPUT_H)
        w = ((k[:, 2] > 0) & inside).astype(np.float32)
        targets[i] = topdown.gaussian_targets(k[:, :2], w, HYPER["sigma"])
        weights[i] = w
    x = topdown.normalize(common.colour_jitter(rng, crops))
    return x, targets, weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument(
        "--init-from",
        help="start a new phase from this checkpoint directory's weights (fresh optimizer and LR schedule)",
    )
    ap.add_argument("--lr", type=float, default=HYPER["lr"])
    ap.add_argument("--warmup", type=int, default=HYPER["warmup"])
    ap.add_argument(
        "--fg-weight",
        type=float,
        default=HYPER["fg_weight"],
        help="extra per-pixel loss weight x target (emphasises the peaks over the flat zeros)",
    )
    ap.add_argument("--stop-at", type=int, help="stop after this step (the schedule still spans --steps)")
    a = ap.parse_args()
    hyper = dict(HYPER, lr=a.lr, warmup=a.warmup, fg_weight=a.fg_weight)
    common.limit_threads(a.threads)
    import paddle

    from tools.train_pose import data as data_mod
    from tools.train_pose.models import TinyPoseNet, count_params

    paddle.seed(a.seed)
    np.random.seed(a.seed)
    net = TinyPoseNet()
    opt = paddle.optimizer.AdamW(
        learning_rate=hyper["lr"], parameters=net.parameters(), weight_decay=hyper["weight_decay"]
    )
    ckpt = common.Checkpoints(a.out)
    log = common.Log(f"{a.out}/train_log.jsonl")
    state = ckpt.load(net, opt)
    start = state["step"] if state else 0
    elapsed = state.get("train_seconds", 0.0) if state else 0.0
    if state:  # resuming this phase: its checkpoint already holds the weights
        init = state.get("init_from")
    else:
        init = common.init_from(net, a.init_from) if a.init_from else None
    data = data_mod.load(a.cache)
    data.pop("det_imgs")  # the crops are all this trainer needs
    log.write(
        event="start",
        step=start,
        params=count_params(net),
        crops=int(len(data["crops"])),
        hyper=hyper,
        seed=a.seed,
        steps=a.steps,
        init_from=init and init["dir"],
    )
    net.train()
    t0 = time.time()
    acc = 0.0
    for step in range(start, min(a.steps, a.stop_at or a.steps)):
        rng = common.step_rng(a.seed, step)
        x, t, w = make_batch(data, rng, HYPER["batch"])
        opt.set_lr(common.lr_at(step, a.steps, hyper["lr"], hyper["warmup"]))
        hm = net(paddle.to_tensor(x))
        target = paddle.to_tensor(t)
        wt = paddle.to_tensor(w)[:, :, None, None] * (1.0 + hyper["fg_weight"] * target)
        loss = (wt * (hm - target) ** 2).mean() * HYPER["loss_scale"]
        loss.backward()
        opt.step()
        opt.clear_grad()
        acc += float(loss)
        done = step + 1
        if done % a.log_every == 0:
            log.write(
                step=done,
                loss=round(acc / a.log_every, 5),
                lr=round(opt.get_lr(), 6),
                sec=round(elapsed + time.time() - t0),
            )
            acc = 0.0
        if done % a.ckpt_every == 0 or done == a.steps or done == a.stop_at:
            ckpt.save(
                net,
                opt,
                done,
                {
                    "train_seconds": elapsed + time.time() - t0,
                    "seed": a.seed,
                    "steps": a.steps,
                    "hyper": hyper,
                    "init_from": init,
                },
            )
    log.write(event="done", step=min(a.steps, a.stop_at or a.steps), sec=round(elapsed + time.time() - t0))


if __name__ == "__main__":
    main()
