"""Evaluate the exported bundles through the full top-down pipeline on held-out synthetic scenes.

    nice -n 19 .venv/bin/python -m tools.train_pose.evaluate --models models --seed 2 --scenes 300 \
        --update-manifest

Runs the committed bundles with Paddle Inference (oneDNN off), preprocessing exactly as the
yml says and PaddleX does (reference/paddlex.md §2): detector -> boxes above the threshold ->
per-box crop (topdown.py) -> heatmaps -> DARK decode. Reports person AP50 (COCO 101-point AP
at IoU 0.5, all detections) and COCO keypoint AP (OKS with the COCO sigmas, AP@[.5:.95], persons
scored detScore x kptScore), plus keypoint AP with ground-truth boxes (keypoint model alone).
Test scenes come from ``--seed`` (training uses base seed 1: disjoint scenes).

``--yolo DIR`` evaluates an Ultralytics YOLOv8-pose export instead (models/yolov8n_pose_synthetic),
through the keypoint service's own one-stage pipeline (package/visionpack/services/pose/yolo_pose.py,
the code a deploy runs), on the same scenes and with the same AP definitions:

    nice -n 19 .venv/bin/python -m tools.train_pose.evaluate --yolo models/yolov8n_pose_synthetic \
        --seed 2 --scenes 300 --update-manifest
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tools.train_pose import common, scenes, topdown
from tools.train_pose.data import scene_seed

LOW_DET_THRESHOLD = 0.1
SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)
REC_THRS = np.linspace(0.0, 1.0, 101)


class Bundle:
    """A bundle directory run with Paddle Inference; inputs fed by name."""

    def __init__(self, path: str | Path, threads: int = 1, onednn: bool = False):
        import yaml
        from paddle import inference

        path = Path(path)
        self.cfg = yaml.safe_load((path / "inference.yml").read_text())
        cfg = inference.Config(str(path / "inference.json"), str(path / "inference.pdiparams"))
        cfg.disable_gpu()
        if onednn:
            cfg.enable_mkldnn()
        else:
            cfg.disable_mkldnn()
        cfg.set_cpu_math_library_num_threads(threads)
        cfg.disable_glog_info()
        self.predictor = inference.create_predictor(cfg)
        self.input_names = self.predictor.get_input_names()

    def run(self, **inputs: np.ndarray) -> list[np.ndarray]:
        for name in self.input_names:
            h = self.predictor.get_input_handle(name)
            x = np.ascontiguousarray(inputs[name])
            h.reshape(x.shape)
            h.copy_from_cpu(x)
        self.predictor.run()
        return [self.predictor.get_output_handle(n).copy_to_cpu() for n in self.predictor.get_output_names()]


def detect(det: Bundle, img: np.ndarray, threshold: float) -> np.ndarray:
    """Boxes [n,5] (x1,y1,x2,y2,score) in image pixels, PaddleX DetPostProcess-style filtering."""
    h, w = img.shape[:2]
    th, tw = det.cfg["Preprocess"][0]["target_size"]
    x = cv2.resize(img, (tw, th), interpolation=cv2.INTER_CUBIC)
    x = topdown.normalize(x[None])
    out, counts = det.run(image=x, scale_factor=np.array([[th / h, tw / w]], np.float32))[:2]
    rows = out[: int(counts[0])]
    rows = rows[(rows[:, 1] > threshold) & (rows[:, 0] > -1)]
    boxes = rows[:, 2:6].copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return np.concatenate([boxes[keep], rows[keep, 1:2]], 1)


def keypoints(kpt: Bundle, img: np.ndarray, boxes: np.ndarray, use_dark: bool = True) -> np.ndarray:
    """[n,17,3] keypoints (x, y, score) for ``boxes`` [n,>=4], all crops in one batch."""
    if len(boxes) == 0:
        return np.zeros((0, 17, 3), np.float32)
    cs = [topdown.box_to_center_scale(b) for b in boxes]
    crops = np.stack([topdown.warp_crop(img, c, s)[0] for c, s in cs])
    heat = kpt.run(image=topdown.normalize(crops))[0]
    return topdown.decode_heatmaps(heat, np.stack([c for c, _ in cs]), np.stack([s for _, s in cs]), use_dark)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def oks(pred: np.ndarray, gt: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity of one prediction [17,>=2] against one ground truth [17,3]."""
    lab = gt[:, 2] > 0
    d2 = ((pred[:, :2] - gt[:, :2]) ** 2).sum(1)
    e = d2 / ((2 * SIGMAS) ** 2 * (area + np.spacing(1)) * 2)
    return float(np.exp(-e[lab]).sum() / max(lab.sum(), 1))


def oks_matrix(preds: np.ndarray, gts: list) -> np.ndarray:
    sim = np.zeros((len(preds), len(gts)))
    for i, pk in enumerate(preds):
        for j, g in enumerate(gts):
            sim[i, j] = oks(pk, g.keypoints, g.area)
    return sim


def average_precision(records: list[tuple[float, bool]], n_gt: int) -> float:
    """COCO-style 101-point interpolated AP from (score, is_tp) over all images."""
    if n_gt == 0:
        return float("nan")
    if not records:
        return 0.0
    rec = sorted(records, key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in rec])
    fp = np.cumsum([not r[1] for r in rec])
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, REC_THRS, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def match(sim: np.ndarray, scores: np.ndarray, thr: float) -> list[tuple[float, bool]]:
    """Greedy COCO matching of detections (by score) to ground truths by similarity >= thr."""
    used = np.zeros(sim.shape[1], bool)
    out = []
    for d in np.argsort(-scores, kind="stable"):
        best, bj = thr, -1
        for j in range(sim.shape[1]):
            if not used[j] and sim[d, j] >= best:
                best, bj = sim[d, j], j
        if bj >= 0:
            used[bj] = True
        out.append((float(scores[d]), bj >= 0))
    return out


def _scores(
    seed: int, n_scenes: int, n_gt: int, n_kgt: int, det_recs: list, aps: dict, thresholds: Any
) -> dict[str, Any]:
    """The test set and the AP figures both protocols (top-down and YOLOv8-pose) report alike."""
    return {
        "test_set": {
            "generator_version": scenes.GENERATOR_VERSION,
            "base_seed": seed,
            "scenes": n_scenes,
            "persons": n_gt,
            "persons_with_keypoints": n_kgt,
        },
        "person_AP50": round(average_precision(det_recs, n_gt), 4),
        "keypoint_AP": round(float(np.mean(list(aps.values()))), 4),
        "keypoint_AP50": round(aps[thresholds[0]], 4),
        "keypoint_AP75": round(aps[thresholds[5]], 4),
    }


def evaluate(models: Path, seed: int, n_scenes: int, det_threshold: float = 0.5, threads: int = 1) -> dict[str, Any]:
    det = Bundle(models / "person_det_synthetic", threads)
    kpt = Bundle(models / "tinypose_synthetic", threads)
    thresholds = np.linspace(0.5, 0.95, 10)
    det_recs: list[tuple[float, bool]] = []
    low = min(det_threshold, LOW_DET_THRESHOLD)
    kpt_recs: dict[float, list] = {t: [] for t in thresholds}
    low_recs: dict[float, list] = {t: [] for t in thresholds}
    gt_recs: dict[float, list] = {t: [] for t in thresholds}
    n_gt = n_kgt = 0
    t0 = time.time()
    for i in range(n_scenes):
        img, persons = scenes.generate_scene(scene_seed(seed, i))
        gt_boxes = np.array([p.bbox for p in persons], np.float32).reshape(-1, 4)
        n_gt += len(persons)
        dets_all = detect(det, img, 0.01)
        det_recs += match(box_iou(dets_all[:, :4], gt_boxes), dets_all[:, 4], 0.5)
        # keypoints through the served pipeline: boxes above the threshold, one batch per image
        # (each crop is independent, so the low-threshold run contains the served one)
        dets = dets_all[dets_all[:, 4] > low]
        pred = keypoints(kpt, img, dets)
        with_kpts = [p for p in persons if (p.keypoints[:, 2] > 0).any()]
        n_kgt += len(with_kpts)
        sim = oks_matrix(pred, with_kpts)
        score = dets[:, 4] * pred[:, :, 2].mean(1) if len(pred) else np.zeros(0)
        served = dets[:, 4] > det_threshold
        oracle = keypoints(kpt, img, np.array([g.bbox for g in with_kpts], np.float32).reshape(-1, 4))
        osim = oks_matrix(oracle, with_kpts)
        oscore = oracle[:, :, 2].mean(1) if len(oracle) else np.zeros(0)
        for t in thresholds:
            kpt_recs[t] += match(sim[served], score[served], t)
            low_recs[t] += match(sim, score, t)
            gt_recs[t] += match(osim, oscore, t)
    aps = {t: average_precision(kpt_recs[t], n_kgt) for t in thresholds}
    flips = [name for name in ("person_det_synthetic", "tinypose_synthetic") if _flip_in_graph(models / name)]
    gt_aps = {t: average_precision(gt_recs[t], n_kgt) for t in thresholds}
    low_aps = {t: average_precision(low_recs[t], n_kgt) for t in thresholds}
    return {
        **_scores(seed, n_scenes, n_gt, n_kgt, det_recs, aps, thresholds),
        "keypoint_AP_gt_boxes": round(float(np.mean(list(gt_aps.values()))), 4),
        f"keypoint_AP_det_threshold_{low}": round(float(np.mean(list(low_aps.values()))), 4),
        "protocol": {
            "det_threshold_for_keypoints": det_threshold,
            "det_ap_score_threshold": 0.01,
            "keypoint_score": "detScore * mean(keypoint maxvals)",
            "use_dark": True,
            "flip_test_in_graph": flips,
            "oks_area": "amodal silhouette pixels inside the image",
            "ap": "COCO 101-point",
        },
        "eval_seconds": round(time.time() - t0),
    }


def evaluate_yolo(
    export: Path, seed: int, n_scenes: int, conf: float = 0.25, backend: str = "onnxruntime", threads: int = 1
) -> dict[str, Any]:
    """The YOLO export through the service's pipeline: person AP50 over every detection scoring > 0.01
    (as the top-down detector's), keypoint AP over the persons served at ``conf`` (the deploy's
    det_threshold; Ultralytics' default 0.25) and at LOW_DET_THRESHOLD, persons scored box score x mean
    keypoint confidence (the top-down protocol's detScore x kptScore)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "package"))
    from visionpack.config import ServiceConfig
    from visionpack.inference.engine import create_engine
    from visionpack.services.pose import build_pipeline
    from visionpack.services.pose.pipeline import Options
    from visionpack.services.pose.yolo_pose import Query

    cfg = ServiceConfig(
        deploy="evaluate",
        service="keypoint",
        models={"pose": str(export)},
        backend=backend,
        threads_per_worker=threads,
        max_batch=1,
    )
    pipe = build_pipeline(cfg, Options(), create_engine)
    pipe.warmup()
    thresholds = np.linspace(0.5, 0.95, 10)
    low = min(conf, LOW_DET_THRESHOLD)
    det_recs: list[tuple[float, bool]] = []
    kpt_recs: dict[float, list] = {t: [] for t in thresholds}
    low_recs: dict[float, list] = {t: [] for t in thresholds}
    n_gt = n_kgt = 0
    t0 = time.time()
    for i in range(n_scenes):
        img, persons = scenes.generate_scene(scene_seed(seed, i))
        gt_boxes = np.array([p.bbox for p in persons], np.float32).reshape(-1, 4)
        n_gt += len(persons)
        # one NMS at 0.01: a box is only ever suppressed by a higher-scoring one, so filtering the
        # result at a higher conf gives what predict at that conf gives
        det = pipe.detect(img, Query(conf=0.01))
        det_recs += match(box_iou(det.boxes, gt_boxes), det.scores, 0.5)
        keep = det.scores > low
        pred, box_score = det.keypoints[keep], det.scores[keep]
        with_kpts = [p for p in persons if (p.keypoints[:, 2] > 0).any()]
        n_kgt += len(with_kpts)
        sim = oks_matrix(pred, with_kpts)
        score = box_score * pred[:, :, 2].mean(1) if len(pred) else np.zeros(0)
        served = box_score > conf
        for t in thresholds:
            kpt_recs[t] += match(sim[served], score[served], t)
            low_recs[t] += match(sim, score, t)
    aps = {t: average_precision(kpt_recs[t], n_kgt) for t in thresholds}
    low_aps = {t: average_precision(low_recs[t], n_kgt) for t in thresholds}
    return {
        **_scores(seed, n_scenes, n_gt, n_kgt, det_recs, aps, thresholds),
        f"keypoint_AP_det_threshold_{low}": round(float(np.mean(list(low_aps.values()))), 4),
        "protocol": {
            "pipeline": "visionpack.services.pose.yolo_pose (letterbox, conf, NMS IoU 0.7, max_det 300)",
            "backend": backend,
            "det_threshold_for_keypoints": conf,
            "det_ap_score_threshold": 0.01,
            "keypoint_score": "box score * mean(keypoint confidences)",
            "oks_area": "amodal silhouette pixels inside the image",
            "ap": "COCO 101-point",
        },
        "eval_seconds": round(time.time() - t0),
    }


def _flip_in_graph(bundle: Path) -> bool:
    """Was the flip test baked into this bundle's graph (export --det/--kpt-flip-in-graph)?"""
    manifest = bundle / "manifest.json"
    return manifest.is_file() and bool(json.loads(manifest.read_text())["source"].get("flip_test_in_graph"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="models")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--scenes", type=int, default=300)
    ap.add_argument("--det-threshold", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--update-manifest", action="store_true")
    ap.add_argument("--yolo", type=Path, help="an Ultralytics pose export directory to evaluate instead")
    ap.add_argument("--backend", default="onnxruntime", help="with --yolo: onnxruntime or paddle")
    a = ap.parse_args()
    common.limit_threads(a.threads)
    if a.yolo is not None:
        conf = 0.25 if a.det_threshold == 0.5 else a.det_threshold  # Ultralytics' default conf
        res = evaluate_yolo(a.yolo, a.seed, a.scenes, conf, a.backend, a.threads)
        print(json.dumps(res, indent=1))
        if a.update_manifest:
            path = a.yolo / "manifest.json"
            manifest = json.loads(path.read_text())
            manifest.setdefault("metrics", {})[a.backend] = res
            path.write_text(json.dumps(manifest, indent=1) + "\n")
        return
    models = Path(a.models)
    res = evaluate(models, a.seed, a.scenes, a.det_threshold, a.threads)
    print(json.dumps(res, indent=1))
    if a.update_manifest:
        from tools.train_pose.export import DET_NAME, KPT_NAME, update_metrics

        shared = {"test_set": res["test_set"], "protocol": res["protocol"]}
        update_metrics(models / DET_NAME, {"person_AP50": res["person_AP50"], **shared})
        update_metrics(
            models / KPT_NAME, {k: v for k, v in res.items() if k.startswith(("keypoint_", "person_"))} | shared
        )


if __name__ == "__main__":
    main()
