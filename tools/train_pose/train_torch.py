"""Train either demo network with PyTorch as the CPU engine (same data, targets and losses).

    nice -n 19 .venv/bin/python -m tools.train_pose.train_torch --model kpt \
        --cache /tmp/vp_pose/cache_train --out /tmp/vp_pose/tkpt --steps 6000 --threads 1

Why a second engine: per step, torch runs these small conv nets several times faster than
Paddle's dynamic graph on this CPU (docs/pose-models.md). Batches come from the Paddle trainers'
``make_batch`` (train_det.py / train_kpt.py) and the losses are the same formulas, so a run here
is the same training. Checkpoints are ``last.pt`` + ``state.json`` (the Paddle trainers' format);
``transfer.py`` turns ``last.pt`` into the ``last.pdparams`` that export.py reads, after a parity
check. Resumable; ``best.pt`` is not kept because evaluation is done on exported bundles.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

from tools.train_pose import common, topdown, train_det, train_kpt

KPT_AUG = {"p": 0.6, "scale": 0.2, "rot": 20.0, "shift": 0.05}


def kpt_affine_aug(rng: np.random.Generator, x_u8: np.ndarray, kpts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Online scale/rotation/shift of cached crops (the cache holds only 2 fixed crops per person).

    Keypoints that leave the crop lose their weight in make_batch (the ``inside`` test).
    """
    out, k_out = x_u8.copy(), kpts.copy()
    c = np.float32([topdown.INPUT_W / 2, topdown.INPUT_H / 2])
    for i in range(len(x_u8)):
        if rng.random() > KPT_AUG["p"]:
            continue
        s = float(np.exp(rng.uniform(-KPT_AUG["scale"], KPT_AUG["scale"])))
        r = float(rng.uniform(-KPT_AUG["rot"], KPT_AUG["rot"])) if rng.random() < 0.5 else 0.0
        m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), r, s)
        m[:, 2] += rng.uniform(-KPT_AUG["shift"], KPT_AUG["shift"], 2) * [topdown.INPUT_W, topdown.INPUT_H]
        out[i] = cv2.warpAffine(
            x_u8[i], m, (topdown.INPUT_W, topdown.INPUT_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        k_out[i, :, :2] = topdown.apply_affine(kpts[i, :, :2], m)
    return out, k_out


def kpt_batch(data: dict, rng: np.random.Generator, batch: int, aug: bool):
    """train_kpt.make_batch on (optionally) re-warped crops."""
    if not aug:
        return train_kpt.make_batch(data, rng, batch)
    idx = rng.integers(0, len(data["crops"]), batch)
    crops, kpts = kpt_affine_aug(rng, data["crops"][idx], data["crop_kpts"][idx])
    return train_kpt.batch_from(crops, kpts, rng)


def det_loss(torch, hm_logit, box, hm_t, reg_t, wt, iou_aware: bool = False):
    """train_det.losses in torch: quality-focal loss on the soft heatmap, GIoU on ltrb boxes.

    ``iou_aware``: at the cells that regress a box, the heatmap target is the Gaussian times the
    IoU of that cell's own predicted box (GFL's quality target), so a peak's score also says how
    well its box fits: the v3 detector's false positives were mostly badly sized boxes ranked
    above good ones (docs/pose-models.md, "Where the AP is lost").
    """
    F = torch.nn.functional
    d = torch.exp(box.clamp(-4.0, 5.0))
    lp, tp, rp, bp = d[:, 0:1], d[:, 1:2], d[:, 2:3], d[:, 3:4]
    lg, tg, rg, bg = reg_t[:, 0:1], reg_t[:, 1:2], reg_t[:, 2:3], reg_t[:, 3:4]
    area_p, area_g = (lp + rp) * (tp + bp), (lg + rg) * (tg + bg)
    inter = (torch.minimum(lp, lg) + torch.minimum(rp, rg)) * (torch.minimum(tp, tg) + torch.minimum(bp, bg))
    union = area_p + area_g - inter
    enclose = (torch.maximum(lp, lg) + torch.maximum(rp, rg)) * (torch.maximum(tp, tg) + torch.maximum(bp, bg))
    giou = inter / union - (enclose - union) / enclose
    n_obj = (hm_t >= 0.999).float().sum().clamp(min=1.0)
    if iou_aware:
        hm_t = torch.where(wt > 0, hm_t * (inter / union).detach().clamp(0.0, 1.0), hm_t)
    p = torch.sigmoid(hm_logit)
    bce = F.binary_cross_entropy_with_logits(hm_logit, hm_t, reduction="none")
    l_hm = (bce * (hm_t - p).abs() ** 2).sum() / n_obj
    l_giou = ((1.0 - giou) * wt).sum() / wt.sum().clamp(min=1.0)
    w = train_det.HYPER["loss_weights"]
    return w["heatmap"] * l_hm + w["giou"] * l_giou, l_hm, l_giou


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["det", "kpt"], required=True)
    ap.add_argument("--cache", nargs="+", required=True, help="one or more scene caches (data.py), used together")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument(
        "--det-input",
        type=int,
        default=common.DET_SIZE,
        help="det: square training input; 192 reproduces the v2 phases that the 320 phase starts from",
    )
    ap.add_argument("--iou-aware", action="store_true", help="det: IoU-weighted heatmap target (det_loss)")
    ap.add_argument("--fg-weight", type=float, default=9.0, help="kpt: per-pixel loss weight 1 + this x target")
    ap.add_argument("--no-aug", action="store_true", help="kpt: no online affine re-warp of the crops")
    ap.add_argument(
        "--init-from",
        help="start a new phase from this run's last.pt weights (fresh optimizer and "
        "LR schedule); the manifest then lists both phases",
    )
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=50)
    a = ap.parse_args()
    common.limit_threads(a.threads)
    import torch

    from tools.train_pose import data as data_mod, torch_models

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    is_det = a.model == "det"
    if is_det:  # make_batch reads the size from train_det.HYPER; the state/manifest record it from there
        train_det.HYPER["input"] = a.det_input
    base = train_det.HYPER if is_det else train_kpt.HYPER
    hyper = dict(base, batch=a.batch or base["batch"], lr=a.lr or base["lr"], warmup=a.warmup, engine="torch")
    if is_det:
        hyper.update(iou_aware=a.iou_aware)
    else:
        hyper.update(fg_weight=a.fg_weight, online_affine=None if a.no_aug else KPT_AUG)
    net = torch_models.PersonDetector() if is_det else torch_models.TinyPoseNet()
    net = net.to(memory_format=torch.channels_last)  # ~1.3x faster convolutions on this CPU

    def tensor(a: np.ndarray):
        return torch.from_numpy(a).contiguous(memory_format=torch.channels_last)

    opt = torch.optim.AdamW(net.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = common.Log(out / "train_log.jsonl")
    start, elapsed, init = 0, 0.0, None
    if (out / "state.json").exists():  # resuming this phase: its checkpoint already holds the weights
        ck = torch.load(out / "last.pt", weights_only=True)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        state = json.loads((out / "state.json").read_text())
        start, elapsed, init = state["step"], state["train_seconds"], state.get("init_from")
    elif a.init_from:
        src = Path(a.init_from)
        net.load_state_dict(torch.load(src / "last.pt", weights_only=True)["net"])
        init = {
            "dir": str(src),
            "sha256": hashlib.sha256((src / "last.pt").read_bytes()).hexdigest(),
            "state": json.loads((src / "state.json").read_text()),
        }
    data = data_mod.load(a.cache, keys=("det_imgs", "det_boxes", "det_count") if is_det else ("crops", "crop_kpts"))
    log.write(
        event="start",
        step=start,
        params=sum(p.numel() for p in net.parameters()),
        hyper=hyper,
        seed=a.seed,
        steps=a.steps,
        torch=torch.__version__,
        init_from=init and init["dir"],
        cache=a.cache,
    )
    net.train()
    t0 = time.time()
    acc = np.zeros(3)
    for step in range(start, a.steps):
        rng = common.step_rng(a.seed, step)
        lr = common.lr_at(step, a.steps, hyper["lr"], hyper["warmup"])
        for g in opt.param_groups:
            g["lr"] = lr
        if is_det:
            x, hm_t, reg_t, wt = train_det.make_batch(data, rng, hyper["batch"])
            hm, box = net(tensor(x))
            loss, l1, l2 = det_loss(
                torch, hm, box, *(torch.from_numpy(v) for v in (hm_t, reg_t, wt)), iou_aware=a.iou_aware
            )
        else:
            x, t, w = kpt_batch(data, rng, hyper["batch"], not a.no_aug)
            target = torch.from_numpy(t)
            hm = net(tensor(x))
            wt = torch.from_numpy(w)[:, :, None, None] * (1.0 + hyper["fg_weight"] * target)
            loss = (wt * (hm - target) ** 2).mean() * hyper["loss_scale"]
            l1 = l2 = loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc += [float(loss), float(l1), float(l2)]
        done = step + 1
        if done % a.log_every == 0:
            acc /= a.log_every
            log.write(
                step=done,
                loss=round(acc[0], 5),
                l1=round(acc[1], 5),
                l2=round(acc[2], 5),
                lr=round(lr, 6),
                sec=round(elapsed + time.time() - t0),
            )
            acc[:] = 0
        if done % a.ckpt_every == 0 or done == a.steps:
            torch.save({"net": net.state_dict(), "opt": opt.state_dict()}, out / "last.pt.tmp")
            os.replace(out / "last.pt.tmp", out / "last.pt")
            state = {
                "step": done,
                "train_seconds": elapsed + time.time() - t0,
                "seed": a.seed,
                "steps": a.steps,
                "hyper": hyper,
                "init_from": init,
                "engine": "torch " + torch.__version__,
                "threads": a.threads,
                "caches": a.cache,
                "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (out / "state.json.tmp").write_text(json.dumps(state, indent=1))
            os.replace(out / "state.json.tmp", out / "state.json")
    log.write(event="done", step=a.steps, sec=round(elapsed + time.time() - t0))


if __name__ == "__main__":
    main()
