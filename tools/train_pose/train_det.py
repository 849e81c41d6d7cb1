"""Train the demo person detector (anchor-free, common.DET_SIZE square input, stride 8) on the scene cache.

    nice -n 19 .venv/bin/python -m tools.train_pose.train_det --cache /tmp/vp_pose/cache_train \
        --out /tmp/vp_pose/det192 --steps 2000

Resumes from ``--out``/last.* when present. Batches are drawn from a per-step seeded generator,
so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from tools.train_pose import common

STRIDE = 8
CACHE_SIZE = 320  # the scene cache stores detector images at 320x320
MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])
HYPER = {
    "batch": 16,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "warmup": 50,
    "input": common.DET_SIZE,
    "gauss_alpha": 0.54,
    "sigma_floor_cells": 0.6,
    "box_positive_min": 0.3,
    "loss_weights": {"heatmap": 1.0, "giou": 2.0},
}


def det_targets(boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft centre heatmap [1,F,F] (1 at the centre cell), ltrb distances in cells [4,F,F], weights [1,F,F].

    Every cell whose centre lies in a box and whose Gaussian value is >= box_positive_min
    regresses that box (dense supervision learns much faster than CenterNet's single cell).
    """
    feat = size // STRIDE
    hm = np.zeros((feat, feat), np.float32)
    reg = np.ones((4, feat, feat), np.float32)
    wt = np.zeros((feat, feat), np.float32)
    c = (np.arange(feat, dtype=np.float32) + 0.5) * STRIDE
    xs, ys = np.meshgrid(c, c)
    floor = HYPER["sigma_floor_cells"] * STRIDE
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for b in boxes[np.argsort(-areas)]:  # small boxes last: they own contested cells
        w, h = b[2] - b[0], b[3] - b[1]
        if w < 2 or h < 2:
            continue
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        sx, sy = max(HYPER["gauss_alpha"] * w / 6, floor), max(HYPER["gauss_alpha"] * h / 6, floor)
        g = np.exp(-((xs - cx) ** 2 / (2 * sx * sx) + (ys - cy) ** 2 / (2 * sy * sy)))
        ix, iy = min(int(cx // STRIDE), feat - 1), min(int(cy // STRIDE), feat - 1)
        g[iy, ix] = 1.0
        np.maximum(hm, g, out=hm)
        inside = (xs > b[0]) & (xs < b[2]) & (ys > b[1]) & (ys < b[3])
        pos = inside & (g >= HYPER["box_positive_min"])
        pos[iy, ix] = True
        d = np.stack([xs - b[0], ys - b[1], b[2] - xs, b[3] - ys]) / STRIDE
        reg[:, pos] = np.maximum(d[:, pos], 0.05)
        wt[pos] = g[pos]
    return hm[None], reg, wt[None]


def make_batch(data: dict, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, ...]:
    size = HYPER["input"]
    idx = rng.integers(0, len(data["det_imgs"]), batch)
    imgs = np.stack([cv2.resize(data["det_imgs"][k], (size, size), interpolation=cv2.INTER_AREA) for k in idx])
    hms, regs, wts = [], [], []
    for i, k in enumerate(idx):
        boxes = data["det_boxes"][data["det_offsets"][k] : data["det_offsets"][k + 1]] * (size / CACHE_SIZE)
        if rng.random() < 0.5:
            imgs[i] = imgs[i, :, ::-1]
            boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
        hm, reg, wt = det_targets(boxes, size)
        hms.append(hm), regs.append(reg), wts.append(wt)
    imgs = common.colour_jitter(rng, imgs)
    x = ((imgs.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.stack(hms), np.stack(regs), np.stack(wts)


def losses(paddle, hm_logit, box, hm_t, reg_t, wt):
    """Quality-focal loss on the soft heatmap; GIoU on ltrb boxes at the positive cells."""
    p = paddle.nn.functional.sigmoid(hm_logit)
    bce = paddle.nn.functional.binary_cross_entropy_with_logits(hm_logit, hm_t, reduction="none")
    n_obj = paddle.clip(paddle.cast(hm_t >= 0.999, "float32").sum(), min=1.0)
    l_hm = (bce * paddle.abs(hm_t - p) ** 2).sum() / n_obj
    d = paddle.exp(paddle.clip(box, -4.0, 5.0))
    lp, tp, rp, bp = d[:, 0:1], d[:, 1:2], d[:, 2:3], d[:, 3:4]
    lg, tg, rg, bg = reg_t[:, 0:1], reg_t[:, 1:2], reg_t[:, 2:3], reg_t[:, 3:4]
    area_p, area_g = (lp + rp) * (tp + bp), (lg + rg) * (tg + bg)
    inter = (paddle.minimum(lp, lg) + paddle.minimum(rp, rg)) * (paddle.minimum(tp, tg) + paddle.minimum(bp, bg))
    union = area_p + area_g - inter
    enclose = (paddle.maximum(lp, lg) + paddle.maximum(rp, rg)) * (paddle.maximum(tp, tg) + paddle.maximum(bp, bg))
    giou = inter / union - (enclose - union) / enclose
    l_giou = ((1.0 - giou) * wt).sum() / paddle.clip(wt.sum(), min=1.0)
    w = HYPER["loss_weights"]
    return w["heatmap"] * l_hm + w["giou"] * l_giou, l_hm, l_giou


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument(
        "--init-from",
        help="start a new phase from this checkpoint directory's weights (fresh optimizer and LR schedule)",
    )
    ap.add_argument("--lr", type=float, default=HYPER["lr"])
    ap.add_argument("--warmup", type=int, default=HYPER["warmup"])
    a = ap.parse_args()
    hyper = dict(HYPER, lr=a.lr, warmup=a.warmup)
    common.limit_threads(a.threads)
    import paddle

    from tools.train_pose import data as data_mod
    from tools.train_pose.models import PersonDetector, count_params

    paddle.seed(a.seed)
    np.random.seed(a.seed)
    net = PersonDetector()
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
    log.write(
        event="start",
        step=start,
        params=count_params(net),
        scenes=len(data["det_imgs"]),
        persons=int(len(data["det_boxes"])),
        hyper=hyper,
        seed=a.seed,
        steps=a.steps,
        init_from=init and init["dir"],
    )
    net.train()
    t0 = time.time()
    acc = np.zeros(3)
    for step in range(start, a.steps):
        rng = common.step_rng(a.seed, step)
        x, hm_t, reg_t, wt = make_batch(data, rng, HYPER["batch"])
        opt.set_lr(common.lr_at(step, a.steps, hyper["lr"], hyper["warmup"]))
        hm, box = net(paddle.to_tensor(x))
        loss, l_hm, l_giou = losses(
            paddle, hm, box, paddle.to_tensor(hm_t), paddle.to_tensor(reg_t), paddle.to_tensor(wt)
        )
        loss.backward()
        opt.step()
        opt.clear_grad()
        acc += [float(loss), float(l_hm), float(l_giou)]
        done = step + 1
        if done % a.log_every == 0:
            acc /= a.log_every
            log.write(
                step=done,
                loss=round(acc[0], 4),
                hm=round(acc[1], 4),
                giou=round(acc[2], 4),
                lr=round(opt.get_lr(), 6),
                sec=round(elapsed + time.time() - t0),
            )
            acc[:] = 0
        if done % a.ckpt_every == 0 or done == a.steps:
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
    log.write(event="done", step=a.steps, sec=round(elapsed + time.time() - t0))


if __name__ == "__main__":
    main()
