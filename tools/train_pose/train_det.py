"""Train the demo person detector (CenterNet-style, 320x320, stride 8) on the scene cache.

    nice -n 19 .venv/bin/python -m tools.train_pose.train_det --cache /tmp/vp_pose/cache_train \
        --out /tmp/vp_pose/det --steps 4000

Resumes from ``--out``/last.* when present. Batches are drawn from a per-step seeded generator,
so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tools.train_pose import common

STRIDE = 8
SIZE = 320
FEAT = SIZE // STRIDE
MEAN = np.float32([0.485, 0.456, 0.406])
STD = np.float32([0.229, 0.224, 0.225])
HYPER = {"batch": 16, "lr": 2e-3, "weight_decay": 1e-4, "warmup": 50, "gauss_alpha": 0.54,
         "loss_weights": {"heatmap": 1.0, "log_wh": 1.0, "offset": 1.0}}


def det_targets(boxes: np.ndarray, alpha: float = HYPER["gauss_alpha"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre heatmap [1,F,F], box regression [4,F,F] (log w, log h in cells, dx, dy), weights [1,F,F]."""
    hm = np.zeros((FEAT, FEAT), np.float32)
    reg = np.zeros((4, FEAT, FEAT), np.float32)
    wt = np.zeros((FEAT, FEAT), np.float32)
    ys, xs = np.mgrid[0:FEAT, 0:FEAT].astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for b in boxes[np.argsort(-areas)]:  # small boxes last: they own contested cells
        w, h = (b[2] - b[0]) / STRIDE, (b[3] - b[1]) / STRIDE
        if w <= 0.25 or h <= 0.25:
            continue
        cx, cy = (b[0] + b[2]) / 2 / STRIDE, (b[1] + b[3]) / 2 / STRIDE
        ix, iy = int(np.clip(math.floor(cx), 0, FEAT - 1)), int(np.clip(math.floor(cy), 0, FEAT - 1))
        sx, sy = max(alpha * w / 6, 0.4), max(alpha * h / 6, 0.4)
        g = np.exp(-((xs - ix) ** 2 / (2 * sx * sx) + (ys - iy) ** 2 / (2 * sy * sy)))
        np.maximum(hm, g, out=hm)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                x, y = ix + dx, iy + dy
                if 0 <= x < FEAT and 0 <= y < FEAT:
                    reg[:, y, x] = (math.log(w), math.log(h), cx - x, cy - y)
                    wt[y, x] = g[y, x]
    return hm[None], reg, wt[None]


def make_batch(data: dict, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, ...]:
    idx = rng.integers(0, len(data["det_imgs"]), batch)
    imgs = data["det_imgs"][idx].copy()
    hms, regs, wts = [], [], []
    for i, k in enumerate(idx):
        boxes = data["det_boxes"][data["det_offsets"][k]:data["det_offsets"][k + 1]].copy()
        if rng.random() < 0.5:
            imgs[i] = imgs[i, :, ::-1]
            boxes[:, [0, 2]] = SIZE - boxes[:, [2, 0]]
        hm, reg, wt = det_targets(boxes)
        hms.append(hm), regs.append(reg), wts.append(wt)
    imgs = common.colour_jitter(rng, imgs)
    x = ((imgs.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.stack(hms), np.stack(regs), np.stack(wts)


def losses(paddle, hm_logit, box, hm_t, reg_t, wt):
    """CenterNet focal loss on the heatmap; weighted L1 on log-size and offset near centres."""
    p = paddle.clip(paddle.nn.functional.sigmoid(hm_logit), 1e-4, 1 - 1e-4)
    pos = paddle.cast(hm_t >= 0.999, "float32")
    neg = 1.0 - pos
    pos_loss = -paddle.log(p) * (1 - p) ** 2 * pos
    neg_loss = -paddle.log(1 - p) * p ** 2 * (1 - hm_t) ** 4 * neg
    n_pos = paddle.clip(pos.sum(), min=1.0)
    l_hm = (pos_loss.sum() + neg_loss.sum()) / n_pos
    norm = paddle.clip(wt.sum(), min=1.0)
    diff = paddle.abs(box - reg_t) * wt
    l_wh = diff[:, 0:2].sum() / norm
    l_off = diff[:, 2:4].sum() / norm
    w = HYPER["loss_weights"]
    return w["heatmap"] * l_hm + w["log_wh"] * l_wh + w["offset"] * l_off, l_hm, l_wh, l_off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--init-from", help="start a new phase from this checkpoint directory's weights "
                    "(fresh optimizer and LR schedule)")
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
    opt = paddle.optimizer.AdamW(learning_rate=hyper["lr"], parameters=net.parameters(),
                                 weight_decay=hyper["weight_decay"])
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
    log.write(event="start", step=start, params=count_params(net), scenes=len(data["det_imgs"]),
              persons=int(len(data["det_boxes"])), hyper=hyper, seed=a.seed, steps=a.steps, init_from=init and init["dir"])
    net.train()
    t0 = time.time()
    acc = np.zeros(4)
    for step in range(start, a.steps):
        rng = common.step_rng(a.seed, step)
        x, hm_t, reg_t, wt = make_batch(data, rng, HYPER["batch"])
        opt.set_lr(common.lr_at(step, a.steps, hyper["lr"], hyper["warmup"]))
        hm, box = net(paddle.to_tensor(x))
        loss, l_hm, l_wh, l_off = losses(paddle, hm, box, paddle.to_tensor(hm_t), paddle.to_tensor(reg_t),
                                         paddle.to_tensor(wt))
        loss.backward()
        opt.step()
        opt.clear_grad()
        acc += [float(loss), float(l_hm), float(l_wh), float(l_off)]
        done = step + 1
        if done % a.log_every == 0:
            acc /= a.log_every
            log.write(step=done, loss=round(acc[0], 4), hm=round(acc[1], 4), wh=round(acc[2], 4),
                      off=round(acc[3], 4), lr=round(opt.get_lr(), 6), sec=round(elapsed + time.time() - t0))
            acc[:] = 0
        if done % a.ckpt_every == 0 or done == a.steps:
            ckpt.save(net, opt, done, {"train_seconds": elapsed + time.time() - t0, "seed": a.seed,
                                       "steps": a.steps, "hyper": hyper, "init_from": init})
    log.write(event="done", step=a.steps, sec=round(elapsed + time.time() - t0))


if __name__ == "__main__":
    main()
