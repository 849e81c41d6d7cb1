"""Where the pose AP is lost: evaluation-only breakdowns of the demo bundles (session 4).

    nice -n 19 .venv/bin/python -m tools.train_pose.diagnose collect --models models \
        --det-ckpt /tmp/vp3/tdet4 --seed 2 --scenes 300 --out /tmp/vp4/diag.pkl
    .venv/bin/python -m tools.train_pose.diagnose report --data /tmp/vp4/diag.pkl

``collect`` runs the same test scenes as evaluate.py (base seed 2) once and keeps, per scene,
the ground truth, the served detector output (the bundle), the raw detector maps (the torch
checkpoint the bundle was exported from, to try other NMS settings without re-exporting) and
the keypoint heatmaps of plain and mirrored crops for ground-truth boxes and for detections
scoring > 0.05. ``report`` decodes and scores them every way the breakdown needs: AP by
person size and visibility, detector recall and false-positive kinds, NMS variants, per-joint
OKS terms, left/right swaps, flip test (with the three possible re-alignments of the flipped
heatmaps), DARK on/off and the detector threshold. Nothing here changes the bundles.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import cv2
import numpy as np

from tools.train_pose import common, evaluate as ev, scenes, topdown
from tools.train_pose.data import scene_seed

DET_STRIDE = 8
KEEP_DET = 0.05
FLIP_INDEX = scenes.FLIP_INDEX
NAMES = [
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_sho",
    "r_sho",
    "l_elb",
    "r_elb",
    "l_wri",
    "r_wri",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ank",
    "r_ank",
]


# ----------------------------------------------------------------------------------------------- collect
def _heat(kpt: ev.Bundle, img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Heatmaps of the plain and the W-mirrored crops [n,17,32,24] (f16), centres and scales."""
    if len(boxes) == 0:
        z = np.zeros((0, 17, topdown.HEATMAP_H, topdown.HEATMAP_W), np.float16)
        return z, z, np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    cs = [topdown.box_to_center_scale(b) for b in boxes]
    crops = np.stack([topdown.warp_crop(img, c, s)[0] for c, s in cs])
    x = topdown.normalize(crops)
    heat = kpt.run(image=np.concatenate([x, x[:, :, :, ::-1]]))[0]
    n = len(boxes)
    return (
        heat[:n].astype(np.float16),
        heat[n:].astype(np.float16),
        np.stack([c for c, _ in cs]),
        np.stack([s for _, s in cs]),
    )


def collect(models: Path, det_ckpt: Path | None, seed: int, n_scenes: int, out: Path) -> None:
    det = ev.Bundle(models / "person_det_synthetic")
    kpt = ev.Bundle(models / "tinypose_synthetic")
    tnet = None
    if det_ckpt is not None:
        import torch

        from tools.train_pose.torch_models import PersonDetector

        torch.set_num_threads(1)
        tnet = PersonDetector()
        tnet.load_state_dict(torch.load(det_ckpt / "last.pt", weights_only=True)["net"])
        tnet.eval()
    th, tw = det.cfg["Preprocess"][0]["target_size"]
    recs = []
    for i in range(n_scenes):
        img, persons = scenes.generate_scene(scene_seed(seed, i))
        h, w = img.shape[:2]
        dets = ev.detect(det, img, 0.01)
        rec = {
            "hw": (h, w),
            "dets": dets,
            "gt_boxes": np.array([p.bbox for p in persons], np.float32).reshape(-1, 4),
            "gt_kpts": np.array([p.keypoints for p in persons], np.float32).reshape(-1, 17, 3),
            "gt_area": np.array([p.area for p in persons], np.float32),
        }
        if tnet is not None:
            import torch

            x = topdown.normalize(cv2.resize(img, (tw, th), interpolation=cv2.INTER_CUBIC)[None])
            with torch.no_grad():
                hm, box = tnet(torch.from_numpy(x))
            rec["raw_hm"], rec["raw_box"] = hm[0, 0].numpy(), box[0].numpy()
            rec["scale"] = (th / h, tw / w)
        kd = dets[dets[:, 4] > KEEP_DET]
        rec["kd"] = kd
        rec["det_heat"], rec["det_heat_f"], rec["det_c"], rec["det_s"] = _heat(kpt, img, kd)
        rec["gt_heat"], rec["gt_heat_f"], rec["gt_c"], rec["gt_s"] = _heat(kpt, img, rec["gt_boxes"])
        recs.append(rec)
        if i % 50 == 49:
            print(f"{i + 1}/{n_scenes} scenes", flush=True)
    calib = json.loads((models / "person_det_synthetic" / "manifest.json").read_text())["source"]["score_calibration"]
    with open(out, "wb") as f:
        pickle.dump({"seed": seed, "scenes": n_scenes, "calib": calib, "recs": recs}, f, protocol=4)


# ----------------------------------------------------------------------------------------------- decode
def flip_merge(plain: np.ndarray, flipped: np.ndarray, shift: float) -> np.ndarray:
    """Average plain heatmaps with the mirrored crop's, flipped back, joints swapped, shifted right.

    Training mirrors a joint at crop x to 95 - x and the heatmap cell j sits at crop x = 4 j, so
    the flipped-back map peaks 0.75 cells left of the plain one: ``shift`` 0.75 is exact, 1 is
    what PaddleX does for PP-TinyPose models (and our service), 0 is no re-alignment.
    """
    fb = flipped[:, FLIP_INDEX, :, ::-1].astype(np.float32)
    if shift:
        whole, frac = int(np.floor(shift)), shift - np.floor(shift)
        s = np.zeros_like(fb)
        s[..., whole:] = fb[..., : fb.shape[-1] - whole]
        if frac:
            s2 = np.zeros_like(fb)
            s2[..., whole + 1 :] = fb[..., : fb.shape[-1] - whole - 1]
            s = (1 - frac) * s + frac * s2
        fb = s
    return (plain.astype(np.float32) + fb) * 0.5


def decode(
    heat: np.ndarray, heat_f: np.ndarray, c: np.ndarray, s: np.ndarray, flip: float | None, dark: bool
) -> np.ndarray:
    if len(heat) == 0:
        return np.zeros((0, 17, 3), np.float32)
    hm = heat.astype(np.float32) if flip is None else flip_merge(heat, heat_f, flip)
    return topdown.decode_heatmaps(hm, c, s, dark)


# ----------------------------------------------------------------------------------------------- metrics
def kpt_ap(
    preds: list[np.ndarray],
    scores: list[np.ndarray],
    gts: list[np.ndarray],
    areas: list[np.ndarray],
    select: list[np.ndarray] | None = None,
    sim_fn=None,
) -> float:
    """COCO keypoint AP@[.5:.95]; ``select`` limits the ground truths (COCO area-range style:
    detections matched to an unselected person are ignored, unmatched ones count)."""
    thresholds = np.linspace(0.5, 0.95, 10)
    out = []
    sims = []
    for p, g, a in zip(preds, gts, areas):
        sim = np.zeros((len(p), len(g)))
        for i in range(len(p)):
            for j in range(len(g)):
                sim[i, j] = (sim_fn or _oks)(p[i], g[j], a[j])
        sims.append(sim)
    for t in thresholds:
        recs = []
        n_gt = 0
        for k, (sim, sc) in enumerate(zip(sims, scores)):
            sel = np.ones(sim.shape[1], bool) if select is None else select[k]
            n_gt += int(sel.sum())
            recs += _match_ignore(sim, sc, t, sel)
        out.append(ev.average_precision(recs, n_gt))
    return float(np.mean(out))


def _oks(pred: np.ndarray, gt: np.ndarray, area: float) -> float:
    return ev.oks(pred, gt, area)


def _oks_unswapped(pred: np.ndarray, gt: np.ndarray, area: float) -> float:
    """Oracle: the better of the OKS against the labels and against the mirrored labels."""
    return max(ev.oks(pred, gt, area), ev.oks(pred, gt[FLIP_INDEX], area))


def _match_ignore(sim: np.ndarray, scores: np.ndarray, thr: float, sel: np.ndarray) -> list[tuple[float, bool]]:
    used = np.zeros(sim.shape[1], bool)
    out = []
    # COCO: match selected ground truths first, then the ignored ones
    order = np.concatenate([np.flatnonzero(sel), np.flatnonzero(~sel)]).astype(int)
    for d in np.argsort(-scores, kind="stable"):
        bj = -1
        best = thr
        for j in order:
            if used[j]:
                continue
            if bj >= 0 and sel[bj] and not sel[j]:
                break
            if sim[d, j] >= best:
                best, bj = sim[d, j], j
        if bj >= 0:
            used[bj] = True
            if not sel[bj]:
                continue
        out.append((float(scores[d]), bj >= 0))
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        if len(order) == 1:
            break
        iou = ev.box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][iou <= thr]
    return np.array(keep, int)


def raw_dets(rec: dict, b: float, nms_thr: float, peak: bool = True, top_k: int = 100) -> np.ndarray:
    """The graph's decode in numpy on the torch detector maps, NMS at ``nms_thr``."""
    hm = 1 / (1 + np.exp(-(rec["raw_hm"] + b)))
    if peak:
        pad = np.pad(hm, 1, constant_values=-1)
        mx = np.max([pad[dy : dy + hm.shape[0], dx : dx + hm.shape[1]] for dy in range(3) for dx in range(3)], 0)
        hm = hm * (mx == hm)
    flat = hm.ravel()
    idx = np.argsort(-flat, kind="stable")[:top_k]
    sc = flat[idx]
    fw = hm.shape[1]
    ys, xs = (idx // fw).astype(np.float32), (idx % fw).astype(np.float32)
    dist = np.exp(np.clip(rec["raw_box"].reshape(4, -1)[:, idx], -4, 5)) * DET_STRIDE
    cx, cy = (xs + 0.5) * DET_STRIDE, (ys + 0.5) * DET_STRIDE
    sy, sx = rec["scale"]
    boxes = np.stack([(cx - dist[0]) / sx, (cy - dist[1]) / sy, (cx + dist[2]) / sx, (cy + dist[3]) / sy], 1)
    m = sc > 0.01
    boxes, sc = boxes[m], sc[m]
    k = nms(boxes, sc, nms_thr)
    boxes, sc = boxes[k], sc[k]
    h, w = rec["hw"]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate([boxes[ok], sc[ok, None]], 1)


def det_ap(dets: list[np.ndarray], recs: list[dict], iou_thr: float = 0.5, select=None, rescore=None) -> float:
    rr, n_gt = [], 0
    for k, (d, r) in enumerate(zip(dets, recs)):
        sim = ev.box_iou(d[:, :4], r["gt_boxes"])
        sel = np.ones(len(r["gt_boxes"]), bool) if select is None else select[k]
        n_gt += int(sel.sum())
        sc = d[:, 4] if rescore is None else rescore(d, sim)
        rr += _match_ignore(sim, sc, iou_thr, sel)
    return ev.average_precision(rr, n_gt)


# ----------------------------------------------------------------------------------------------- report
def report(data: Path) -> dict:
    with open(data, "rb") as f:
        D = pickle.load(f)
    recs = D["recs"]
    b = float(D["calib"]["b"])
    R: dict = {"scenes": D["scenes"], "base_seed": D["seed"]}
    gts = [r["gt_kpts"] for r in recs]
    areas = [r["gt_area"] for r in recs]
    n = sum(len(g) for g in gts)
    allp = np.concatenate(gts)
    alla = np.concatenate(areas)
    nvis = (allp[:, :, 2] == 2).sum(1)
    nlab = (allp[:, :, 2] > 0).sum(1)
    R["persons"] = n
    splits = np.cumsum([len(g) for g in gts])[:-1]

    def per_scene(mask):
        return np.split(mask, splits)

    groups = {
        "area<32^2": alla < 32**2,
        "32^2-64^2": (alla >= 32**2) & (alla < 64**2),
        "64^2-96^2": (alla >= 64**2) & (alla < 96**2),
        "area>=96^2": alla >= 96**2,
        "visible<6": nvis < 6,
        "visible6-11": (nvis >= 6) & (nvis < 12),
        "visible>=12": nvis >= 12,
        "truncated(labelled<17)": nlab < 17,
        "all17labelled": nlab == 17,
    }
    R["group_sizes"] = {k: int(v.sum()) for k, v in groups.items()}
    R["area_quartiles"] = [round(float(q)) for q in np.percentile(alla, [25, 50, 75])]

    # ---- detector
    served = [r["dets"] for r in recs]
    R["det_AP50_served"] = round(det_ap(served, recs), 4)
    R["det_AP50_by_group"] = {k: round(det_ap(served, recs, select=per_scene(v)), 4) for k, v in groups.items()}
    best_iou, best_score_any = [], []
    fp_kind = {"duplicate": 0, "poor_localisation(0.1<=IoU<0.5)": 0, "background(IoU<0.1)": 0}
    fp_kind_hi = dict.fromkeys(fp_kind, 0)
    for r, d in zip(recs, served):
        iou = ev.box_iou(r["gt_boxes"], d[:, :4]) if len(d) else np.zeros((len(r["gt_boxes"]), 0))
        best_iou.append(iou.max(1) if iou.shape[1] else np.zeros(len(r["gt_boxes"])))
        best_score_any.append(
            np.array([d[iou[j] >= 0.5, 4].max() if (iou[j] >= 0.5).any() else 0.0 for j in range(len(iou))])
        )
        m = ev.match(ev.box_iou(d[:, :4], r["gt_boxes"]), d[:, 4], 0.5)
        order = np.argsort(-d[:, 4], kind="stable")
        for (sc, tp), di in zip(m, order):
            if tp:
                continue
            mx = iou[:, di].max() if len(iou) else 0.0
            kind = (
                "duplicate" if mx >= 0.5 else "poor_localisation(0.1<=IoU<0.5)" if mx >= 0.1 else "background(IoU<0.1)"
            )
            fp_kind[kind] += 1
            if sc > 0.5:
                fp_kind_hi[kind] += 1
    best_iou = np.concatenate(best_iou)
    bsa = np.concatenate(best_score_any)
    R["det_recall_any_score(IoU>=0.5)"] = round(float((best_iou >= 0.5).mean()), 4)
    R["det_recall_score>0.5"] = round(float((bsa > 0.5).mean()), 4)
    R["det_recall_by_group"] = {
        k: {
            "any": round(float((best_iou[v] >= 0.5).mean()), 3),
            ">0.5": round(float((bsa[v] > 0.5).mean()), 3),
            "mean_best_IoU": round(float(best_iou[v].mean()), 3),
        }
        for k, v in groups.items()
    }
    R["det_false_positives_all"] = fp_kind
    R["det_false_positives_score>0.5"] = fp_kind_hi
    R["det_AP_at_IoU"] = {str(t): round(det_ap(served, recs, t), 4) for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
    R["det_AP50_rescored_by_true_IoU(oracle)"] = round(
        det_ap(served, recs, rescore=lambda d, s: (s.max(1) if s.shape[1] else np.zeros(len(d))) + 1e-3 * d[:, 4]), 4
    )
    if "raw_hm" in recs[0]:
        R["det_raw_reproduces_served_AP50"] = round(det_ap([raw_dets(r, b, 0.6) for r in recs], recs), 4)
        R["det_AP50_by_nms_iou"] = {
            str(t): round(det_ap([raw_dets(r, b, t) for r in recs], recs), 4) for t in (0.4, 0.5, 0.7, 0.8)
        }
        R["det_AP50_no_peak_pick_nms0.5"] = round(det_ap([raw_dets(r, b, 0.5, peak=False) for r in recs], recs), 4)

    # ---- keypoints with ground-truth boxes
    def gt_preds(flip, dark):
        return [decode(r["gt_heat"], r["gt_heat_f"], r["gt_c"], r["gt_s"], flip, dark) for r in recs]

    variants = {
        "noflip_dark": (None, True),
        "noflip_nodark": (None, False),
        "flip_shift0.75_dark": (0.75, True),
        "flip_shift1_dark(PaddleX)": (1.0, True),
        "flip_shift0_dark": (0.0, True),
        "flip_shift0.75_nodark": (0.75, False),
    }
    gp = {k: gt_preds(*v) for k, v in variants.items()}
    gscore = {k: [p[:, :, 2].mean(1) for p in v] for k, v in gp.items()}
    R["gt_box_AP"] = {k: round(kpt_ap(gp[k], gscore[k], gts, areas), 4) for k in variants}
    base = gp["noflip_dark"]

    def sub_ap(pl, sl, mask):  # the group's persons and their own predictions only
        ms = per_scene(mask)
        return round(
            kpt_ap(
                [p[m] for p, m in zip(pl, ms)],
                [s[m] for s, m in zip(sl, ms)],
                [g[m] for g, m in zip(gts, ms)],
                [a[m] for a, m in zip(areas, ms)],
            ),
            4,
        )

    R["gt_box_AP_by_group"] = {k: sub_ap(base, gscore["noflip_dark"], v) for k, v in groups.items()}
    fl = gp["flip_shift0.75_dark"]
    R["gt_box_AP_by_group_flip0.75"] = {k: sub_ap(fl, gscore["flip_shift0.75_dark"], v) for k, v in groups.items()}
    # oracles: swaps forgiven; ranking by true OKS
    R["gt_box_AP_if_left_right_swaps_forgiven(oracle)"] = round(
        kpt_ap(base, gscore["noflip_dark"], gts, areas, sim_fn=_oks_unswapped), 4
    )
    oks_list = [np.array([ev.oks(p[j], g[j], a[j]) for j in range(len(g))]) for p, g, a in zip(base, gts, areas)]
    R["gt_box_AP_ranked_by_true_OKS(oracle)"] = round(kpt_ap(base, oks_list, gts, areas), 4)
    allo = np.concatenate(oks_list)
    R["gt_box_person_OKS"] = {
        "mean": round(float(allo.mean()), 4),
        "frac>=0.5": round(float((allo >= 0.5).mean()), 4),
        "frac>=0.75": round(float((allo >= 0.75).mean()), 4),
        "frac>=0.9": round(float((allo >= 0.9).mean()), 4),
    }
    R["gt_box_mean_OKS_by_group"] = {k: round(float(allo[v].mean()), 3) for k, v in groups.items()}
    # swaps
    P = np.concatenate(base)
    sw = np.array([ev.oks(P[i], allp[i][FLIP_INDEX], alla[i]) - ev.oks(P[i], allp[i], alla[i]) for i in range(n)])
    R["left_right_swapped_persons(OKS_mirrored_better_by>0.05)"] = round(float((sw > 0.05).mean()), 4)
    Pf = np.concatenate(fl)
    swf = np.array([ev.oks(Pf[i], allp[i][FLIP_INDEX], alla[i]) - ev.oks(Pf[i], allp[i], alla[i]) for i in range(n)])
    R["left_right_swapped_persons_flip0.75"] = round(float((swf > 0.05).mean()), 4)
    # per joint: OKS term exp(-e) and swaps per pair, visible vs hidden
    d2 = ((P[:, :, :2] - allp[:, :, :2]) ** 2).sum(2)
    e = d2 / ((2 * ev.SIGMAS) ** 2 * (alla[:, None] + np.spacing(1)) * 2)
    term = np.exp(-e)
    vis = allp[:, :, 2]
    R["per_joint_mean_OKS_term"] = {
        NAMES[j]: {
            "visible": round(float(term[vis[:, j] == 2, j].mean()), 3),
            "hidden": round(float(term[vis[:, j] == 1, j].mean()), 3),
            "n_hidden": int((vis[:, j] == 1).sum()),
        }
        for j in range(17)
    }
    R["mean_OKS_term_visible_vs_hidden"] = {
        "visible": round(float(term[vis == 2].mean()), 4),
        "hidden": round(float(term[vis == 1].mean()), 4),
        "hidden_share_of_labelled": round(float((vis == 1).sum() / (vis > 0).sum()), 4),
    }

    # oracle: hidden joints perfect -> AP
    def hidden_perfect(pred_l):
        out = []
        for p, g in zip(pred_l, gts):
            q = p.copy()
            h = g[:, :, 2] == 1
            q[:, :, :2][h] = g[:, :, :2][h]
            out.append(q)
        return out

    R["gt_box_AP_if_hidden_joints_perfect(oracle)"] = round(
        kpt_ap(hidden_perfect(base), gscore["noflip_dark"], gts, areas), 4
    )
    # pair swaps: prediction of joint a nearer to the label of b than to its own (both labelled)
    pair_sw = {}
    for a_, b_ in scenes.FLIP_PAIRS:
        lab = (vis[:, a_] > 0) & (vis[:, b_] > 0)
        da = np.linalg.norm(P[:, a_, :2] - allp[:, a_, :2], axis=1) + np.linalg.norm(
            P[:, b_, :2] - allp[:, b_, :2], axis=1
        )
        dx = np.linalg.norm(P[:, a_, :2] - allp[:, b_, :2], axis=1) + np.linalg.norm(
            P[:, b_, :2] - allp[:, a_, :2], axis=1
        )
        sep = np.linalg.norm(allp[:, a_, :2] - allp[:, b_, :2], axis=1)
        wide = lab & (sep > 0.1 * np.sqrt(alla))  # sides far enough apart to tell
        pair_sw[f"{NAMES[a_]}/{NAMES[b_]}"] = round(float((dx[wide] < da[wide]).mean()), 3)
    R["pair_swap_rate(sides_apart)"] = pair_sw

    # ---- full pipeline
    def det_preds(flip, dark):
        return [decode(r["det_heat"], r["det_heat_f"], r["det_c"], r["det_s"], flip, dark) for r in recs]

    full = {}
    for name, (flip, dark) in {
        "noflip_dark": (None, True),
        "flip_shift0.75_dark": (0.75, True),
        "flip_shift1_dark(PaddleX)": (1.0, True),
        "noflip_nodark": (None, False),
    }.items():
        pr = det_preds(flip, dark)
        row = {}
        for thr in (0.5, 0.4, 0.3, 0.2, 0.1, 0.05):
            ps, ss = [], []
            for r, p in zip(recs, pr):
                m = r["kd"][:, 4] > thr
                ps.append(p[m])
                ss.append(r["kd"][m, 4] * p[m][:, :, 2].mean(1))
            row[f"det>{thr}"] = round(kpt_ap(ps, ss, gts, areas), 4)
        full[name] = row
        if name == "noflip_dark":
            ps, ss = [], []
            for r, p in zip(recs, pr):
                m = r["kd"][:, 4] > 0.5
                ps.append(p[m])
                ss.append(r["kd"][m, 4] * p[m][:, :, 2].mean(1))
            best = np.concatenate(
                [
                    ev.oks_matrix(p, [scenes.Person(None, g_, a_) for g_, a_ in zip(g, a)]).max(0)
                    if len(p)
                    else np.zeros(len(g))
                    for p, g, a in zip(ps, gts, areas)
                ]
            )
            R["full_best_OKS_per_person(det>0.5)"] = {
                k: {
                    "mean": round(float(best[v].mean()), 3),
                    "frac>=0.5": round(float((best[v] >= 0.5).mean()), 3),
                    "frac>=0.75": round(float((best[v] >= 0.75).mean()), 3),
                }
                for k, v in {"all": np.ones(n, bool), **groups}.items()
            }
            R["full_AP_if_swaps_forgiven(oracle,det>0.5)"] = round(kpt_ap(ps, ss, gts, areas, sim_fn=_oks_unswapped), 4)
            # scoring: det score alone / keypoint score alone
            R["full_AP_score=det_only(det>0.5)"] = round(
                kpt_ap(ps, [r["kd"][r["kd"][:, 4] > 0.5, 4] for r in recs], gts, areas), 4
            )
    R["full_pipeline_AP"] = full
    return R


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--models", default="models")
    c.add_argument("--det-ckpt", default=None)
    c.add_argument("--seed", type=int, default=2)
    c.add_argument("--scenes", type=int, default=300)
    c.add_argument("--out", required=True)
    c.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("report")
    r.add_argument("--data", required=True)
    r.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.cmd == "collect":
        common.limit_threads(a.threads)
        collect(Path(a.models), Path(a.det_ckpt) if a.det_ckpt else None, a.seed, a.scenes, Path(a.out))
    else:
        common.limit_threads(1)
        res = report(Path(a.data))
        print(json.dumps(res, indent=1))
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
