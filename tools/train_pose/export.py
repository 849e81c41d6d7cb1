"""Export trained checkpoints as PaddleX-3 bundles (inference.json/.pdiparams/.yml + manifest.json).

    nice -n 19 .venv/bin/python -m tools.train_pose.export --det /tmp/vp_pose/det --kpt /tmp/vp_pose/kpt \
        --out models

Writes ``<out>/person_det_synthetic`` (PaddleX object-detection contract, loadable as
PP-YOLOE-S_human) and ``<out>/tinypose_synthetic`` (PP-TinyPose_128x96 contract). Uses
tools/convert/bundle_writer.py for the graph, yml and manifest.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from tools.convert import bundle_writer
from tools.train_pose import scenes, topdown
from tools.train_pose.common import DET_SIZE

DET_NAME, KPT_NAME = "person_det_synthetic", "tinypose_synthetic"
DET_MODEL_NAME, KPT_MODEL_NAME = "PP-YOLOE-S_human", "PP-TinyPose_128x96"
NORMALIZE = {"type": "NormalizeImage", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}
NMS = {"top_k": 100, "score_threshold": 0.01, "nms_threshold": 0.6, "keep_top_k": 100}


def det_yaml() -> dict[str, Any]:
    return {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "COCO",
        "use_dynamic_shape": False,
        "arch": "YOLO",
        "min_subgraph_size": 3,
        "Preprocess": [
            {"type": "Resize", "interp": 2, "keep_ratio": False, "target_size": [DET_SIZE, DET_SIZE]},
            dict(NORMALIZE),
            {"type": "Permute"},
        ],
        "label_list": ["person"],
        "Global": {"model_name": DET_MODEL_NAME},
    }


def kpt_yaml() -> dict[str, Any]:
    return {
        "mode": "paddle",
        "draw_threshold": 0.5,
        "metric": "KeyPointTopDownCOCOEval",
        "use_dynamic_shape": False,
        "arch": "HRNet",
        "min_subgraph_size": 3,
        "Preprocess": [
            {"type": "TopDownEvalAffine", "trainsize": [topdown.INPUT_W, topdown.INPUT_H]},
            dict(NORMALIZE),
            {"type": "Permute"},
        ],
        "label_list": ["person"],
        "use_dark": True,
        "flip_perm": [list(p) for p in scenes.FLIP_PAIRS],
        "Global": {"model_name": KPT_MODEL_NAME},
    }


def _phases(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Training phases oldest first (a phase started with --init-from carries its parent's state)."""
    parent = (state.get("init_from") or {}).get("state")
    own = {
        "seed": state.get("seed"),
        "steps": state.get("step"),
        "hyper": state.get("hyper"),
        "train_seconds": round(float(state.get("train_seconds", 0.0))),
    }
    if state.get("caches"):  # runs that name their scene caches (train_torch --cache a b)
        own["caches"] = [_cache_meta(c) for c in state["caches"]]
    return (_phases(parent) if parent else []) + [own]


def _cache_meta(cache: str) -> dict[str, Any]:
    meta = Path(cache) / "meta.json"
    return json.loads(meta.read_text()) if meta.is_file() else {"path": cache}


def _source(ckpt_dir: Path, data_seeds: list[int]) -> dict[str, Any]:
    state = json.loads((ckpt_dir / "state.json").read_text())
    phases = _phases(state)
    return {
        "kind": "trained-here",
        "license": "same as this repository (weights trained from scratch, no third-party data)",
        "training_tool": "tools/train_pose",
        "data": {
            "generator": "tools/train_pose/scenes.py",
            "generator_version": scenes.GENERATOR_VERSION,
            "base_seed": data_seeds[0],
            "base_seeds": list(data_seeds),
        },
        "train_seed": phases[0]["seed"],
        "steps": sum(p["steps"] or 0 for p in phases),
        "train_seconds": sum(p["train_seconds"] for p in phases),
        "phases": phases,
        "threads": state.get("threads", 1),
        "device": "cpu",
        # torch runs are trained in PyTorch and copied into the Paddle network (transfer.py)
        "engine": state.get("engine", "paddle " + _paddle_version()),
    }


def _flip_record(flip_in_graph: bool) -> dict[str, Any]:
    """The manifest's note that the graph runs the flip test (evaluate.py and the docs read it)."""
    return {"flip_test_in_graph": True} if flip_in_graph else {}


def _paddle_version() -> str:
    import paddle

    return paddle.__version__


def _build(ckpt_dir: Path) -> dict[str, Any]:
    import paddle

    return {
        "tool": "tools/train_pose/export.py",
        "inputs_sha256": {"last.pdparams": bundle_writer.sha256_file(ckpt_dir / "last.pdparams")},
        "paddle": paddle.__version__,
    }


def fit_calibration(bundle: Path, seed: int, n_scenes: int) -> tuple[float, float, dict[str, Any]]:
    """Shift the centre logit so PaddleX's default threshold 0.5 is the F1-best operating point.

    Monotonic, so rankings and AP are unchanged; it only makes the served default threshold
    (draw_threshold 0.5, which the contract fixes) return the persons this weak demo detector
    can find. Fitted on calibration scenes disjoint from training (1) and evaluation (2).
    """
    import numpy as np

    from tools.train_pose import evaluate as ev
    from tools.train_pose.data import scene_seed

    det = ev.Bundle(bundle)
    logits, labels, n_persons = [], [], []
    for i in range(n_scenes):
        img, persons = scenes.generate_scene(scene_seed(seed, i))
        d = ev.detect(det, img, 0.01)
        gt = np.array([p.bbox for p in persons], np.float32).reshape(-1, 4)
        n_persons.append(len(persons))
        for s_, tp in ev.match(ev.box_iou(d[:, :4], gt), d[:, 4], 0.5):
            s_ = min(max(s_, 1e-6), 1 - 1e-6)
            logits.append(np.log(s_ / (1 - s_)))
            labels.append(float(tp))
    x, y = np.array(logits), np.array(labels)
    n_gt = sum(n_persons)
    order = np.argsort(-x)
    tp = np.cumsum(y[order])
    f1 = 2 * tp / (np.arange(1, len(x) + 1) + n_gt)
    best = int(f1.argmax())
    a, b = 1.0, -float(x[order][best]) + 1e-4  # the F1-best raw logit becomes score 0.5
    info = {
        "method": "logit shift: the F1-optimal detection threshold on calibration scenes maps to 0.5",
        "scenes": n_scenes,
        "base_seed": seed,
        "persons": int(n_gt),
        "detections": int(len(x)),
        "raw_threshold": round(float(1 / (1 + np.exp(-x[order][best]))), 4),
        "f1_at_threshold": round(float(f1[best]), 4),
        "recall_at_threshold": round(float(tp[best] / n_gt), 4),
        "precision_at_threshold": round(float(tp[best] / (best + 1)), 4),
        "a": a,
        "b": round(b, 5),
    }
    return a, b, info


def export_det(
    ckpt_dir: Path,
    out: Path,
    data_seeds: list[int],
    metrics: dict | None = None,
    calib_seed: int = 4,
    calib_scenes: int = 0,
    flip_in_graph: bool = False,
) -> Path:
    import paddle

    from tools.train_pose import models

    DetectorExport, PersonDetector = models.DetectorExport, models.PersonDetector

    net = PersonDetector()
    net.set_state_dict(paddle.load(str(ckpt_dir / "last.pdparams")))
    specs = [
        paddle.static.InputSpec([None, 3, DET_SIZE, DET_SIZE], "float32", "image"),
        paddle.static.InputSpec([None, 2], "float32", "scale_factor"),
    ]
    target = out / DET_NAME
    tmp = out / f".{DET_NAME}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    calib: dict[str, Any] = {"method": "none"}
    a, b = 1.0, 0.0
    if calib_scenes:  # export raw, fit the calibration on held-out scenes, export again with it
        bundle_writer.save_inference_model(DetectorExport(net, **NMS, flip=flip_in_graph), specs, tmp)
        bundle_writer.write_yaml(tmp, det_yaml())
        a, b, calib = fit_calibration(tmp, calib_seed, calib_scenes)
        shutil.rmtree(tmp)
    bundle_writer.save_inference_model(DetectorExport(net, **NMS, calib=(a, b), flip=flip_in_graph), specs, tmp)
    bundle_writer.write_yaml(tmp, det_yaml())
    src = _source(ckpt_dir, data_seeds)
    src["nms_in_graph"] = NMS
    src["score_calibration"] = calib
    src |= _flip_record(flip_in_graph)
    # oneDNN is recorded on only when it was checked to give the same boxes (PaddleX enables it by default)
    onednn = onednn_matches(tmp, _probe_inputs("det"))
    bundle_writer.write_manifest(
        tmp,
        name=DET_NAME,
        task="object_detection",
        paddlex_model_name=DET_MODEL_NAME,
        source=src,
        runtime={"onednn": onednn},
        build=_build(ckpt_dir),
        metrics=metrics,
    )
    _swap(tmp, target)
    return target


def export_kpt(
    ckpt_dir: Path, out: Path, data_seeds: list[int], metrics: dict | None = None, flip_in_graph: bool = False
) -> Path:
    import paddle

    from tools.train_pose.models import PoseExport, TinyPoseNet

    net = TinyPoseNet()
    net.set_state_dict(paddle.load(str(ckpt_dir / "last.pdparams")))
    specs = [paddle.static.InputSpec([None, 3, topdown.INPUT_H, topdown.INPUT_W], "float32", "image")]
    target = out / KPT_NAME
    tmp = out / f".{KPT_NAME}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    bundle_writer.save_inference_model(PoseExport(net, flip=flip_in_graph), specs, tmp)
    bundle_writer.write_yaml(tmp, kpt_yaml())
    # PaddleX blocklists the real PP-TinyPose from oneDNN; this network is recorded on only when
    # oneDNN was checked to give the same heatmaps
    onednn = onednn_matches(tmp, _probe_inputs("kpt"))
    bundle_writer.write_manifest(
        tmp,
        name=KPT_NAME,
        task="keypoint_detection",
        paddlex_model_name=KPT_MODEL_NAME,
        source=_source(ckpt_dir, data_seeds) | _flip_record(flip_in_graph),
        runtime={"onednn": onednn},
        build=_build(ckpt_dir),
        metrics=metrics,
    )
    _swap(tmp, target)
    return target


def onednn_matches(bundle: Path, inputs: dict[str, Any], tol: float = 1e-3) -> bool:
    """Do Paddle Inference runs with oneDNN on and off give the same outputs for ``inputs``?"""
    import numpy as np

    from tools.train_pose.evaluate import Bundle

    try:
        off = Bundle(bundle).run(**inputs)
        on = Bundle(bundle, onednn=True).run(**inputs)
    except Exception as exc:  # an op without a oneDNN kernel/attribute conversion: stay off
        print(f"{bundle.name}: oneDNN run failed: {exc}")
        return False
    return len(on) == len(off) and all(
        a.shape == b.shape and np.allclose(a, b, atol=tol, rtol=tol) for a, b in zip(off, on)
    )


def _probe_inputs(kind: str) -> dict[str, Any]:
    import cv2
    import numpy as np

    if kind == "det":
        img, _ = scenes.generate_scene(424242)
        h, w = img.shape[:2]
        x = topdown.normalize(cv2.resize(img, (DET_SIZE, DET_SIZE), interpolation=cv2.INTER_CUBIC)[None])
        return {
            "image": np.concatenate([x, x[:, :, ::-1]]),
            "scale_factor": np.array([[DET_SIZE / h, DET_SIZE / w]] * 2, np.float32),
        }
    x = np.random.default_rng(0).normal(size=(4, 3, topdown.INPUT_H, topdown.INPUT_W)).astype(np.float32)
    return {"image": x}


def _swap(tmp: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def update_metrics(bundle: Path, metrics: dict[str, Any]) -> None:
    """Rewrite a bundle's manifest with ``metrics`` (file hashes are recomputed, unchanged)."""
    m = bundle_writer.read_manifest(bundle)
    if m is None:
        raise SystemExit(f"{bundle}: no manifest.json")
    bundle_writer.write_manifest(
        bundle,
        name=m["name"],
        task=m["task"],
        paddlex_model_name=m["paddlex_model_name"],
        source=m["source"],
        runtime=m["runtime"],
        build=m["build"],
        metrics=metrics,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--det", help="detector checkpoint directory")
    ap.add_argument("--kpt", help="keypoint checkpoint directory")
    ap.add_argument("--out", default="models")
    ap.add_argument(
        "--data-seed",
        type=int,
        nargs="+",
        default=[1],
        help="base seed(s) of the scene caches the checkpoint was trained on (recorded in the manifest)",
    )
    ap.add_argument("--calib-seed", type=int, default=4, help="base seed of the score-calibration scenes")
    ap.add_argument("--calib-scenes", type=int, default=100, help="0 = no detector score calibration")
    ap.add_argument(
        "--kpt-flip-in-graph",
        action="store_true",
        help="bake the flip test into the keypoint graph (same contract, 2x compute)",
    )
    ap.add_argument(
        "--det-flip-in-graph",
        action="store_true",
        help="bake the flip test into the detector graph (same contract, 2x compute)",
    )
    a = ap.parse_args()
    from tools.train_pose.common import limit_threads

    limit_threads(1)
    out = Path(a.out)
    if a.det:
        print(
            "wrote",
            export_det(
                Path(a.det),
                out,
                a.data_seed,
                calib_seed=a.calib_seed,
                calib_scenes=a.calib_scenes,
                flip_in_graph=a.det_flip_in_graph,
            ),
        )
    if a.kpt:
        print("wrote", export_kpt(Path(a.kpt), out, a.data_seed, flip_in_graph=a.kpt_flip_in_graph))


if __name__ == "__main__":
    main()
