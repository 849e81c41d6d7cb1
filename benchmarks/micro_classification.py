"""In-process timings for one Paddle thread count; run by bench_classification.py in a fresh
interpreter per configuration (Paddle/OpenMP thread pools are per process and must not leak
from one configuration into the next).

    OMP_NUM_THREADS=2 PYTHONPATH=package python benchmarks/micro_classification.py \
        --bundle models/efficientnet_lite0_imagenet --jpeg img.jpg --threads 2

Prints one JSON object with p50/p95 in milliseconds of:
  predictor          Engine.run on the preprocessed tensor (one image: what a request alone costs)
  predictor_batch4_per_image  Engine.run on 4 copies of it, divided by 4 (what opportunistic
                     batching costs per image under load; services/classification.py)
  decode             visionpack.imaging.decode: header sniff + cv2.imdecode + BGR->RGB
  preprocess         cls_transforms from inference.yml + batch (resize 256, crop 224, normalize, CHW)
  decode_preprocess  the two above back to back, per image (the target's denominator term)
  envelope           json.loads of the request body + base64 decode (what HTTP adds before decode)
  service_inprocess  ClassificationService.decode_easydl + predict + encode + json.dumps: the whole
                     request path without HTTP, gunicorn or Flask
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# --package DIR (a patched scratch copy) must win over the tree's package/, so read it first.
_pkg = sys.argv[sys.argv.index("--package") + 1] if "--package" in sys.argv[:-1] else str(REPO / "package")
sys.path.insert(0, _pkg)


def timeit(fn: Callable[[], Any], iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(ms)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "n": int(a.size),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--jpeg", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--onednn", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--package", default=str(REPO / "package"), help="visionpack package dir to time")
    ap.add_argument("--cv2-threads", type=int, help="cv2.setNumThreads before timing (default: OpenCV's own)")
    a = ap.parse_args(argv)

    import cv2
    import numpy as np

    if a.cv2_threads is not None:
        cv2.setNumThreads(a.cv2_threads)

    from visionpack import config as config_mod
    from visionpack.bundle import load_bundle
    from visionpack.imaging import ImageLimits, decode
    from visionpack.inference import cls_transforms as T
    from visionpack.inference.paddle_engine import PaddleEngine as Engine, paddle_version
    from visionpack.services.classification import ClassificationService

    jpg = Path(a.jpeg).read_bytes()
    body = json.dumps({"image": base64.b64encode(jpg).decode("ascii"), "top_num": 5}).encode()
    bundle = load_bundle(a.bundle)
    onednn = bundle.onednn_default if a.onednn == "auto" else a.onednn == "on"
    ops = T.build_preprocess(bundle.config)
    limits = ImageLimits()

    engine = Engine(bundle.model_file, bundle.params_file, threads=a.threads, onednn=onednn)
    name = engine.input_names[0]
    x = T.batch([T.preprocess(ops, decode(jpg, limits))])

    res: dict[str, Any] = {
        "threads": a.threads,
        "onednn": onednn,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cv2_threads": cv2.getNumThreads(),
        "paddle": paddle_version(),
        "input_shape": list(x.shape),
    }
    # Interleave the CPU-only stages with the predictor in blocks, so a burst of load from
    # another process on the shared machine hits every stage rather than one of them.
    acc: dict[str, list[float]] = {
        k: []
        for k in (
            "predictor",
            "predictor_batch4_per_image",
            "decode",
            "preprocess",
            "decode_preprocess",
            "envelope",
            "service_inprocess",
        )
    }
    x4 = np.repeat(x, 4, axis=0)
    img = decode(jpg, limits)
    cfg = config_mod.from_mapping(
        {"models": {"classifier": a.bundle}, "threads_per_worker": a.threads, "onednn": onednn}
    )
    service = ClassificationService(cfg, lambda b, c: engine)

    def full() -> bytes:
        req = service.decode_easydl(json.loads(body))
        return json.dumps(service.encode_easydl(service.predict(req))).encode()

    blocks = 5
    per = max(1, a.iters // blocks)
    for i in range(blocks):
        w = a.warmup if i == 0 else 2
        acc["predictor"] += timeit(lambda: engine.run({name: x}), per, w)
        acc["predictor_batch4_per_image"] += [
            t / 4 for t in timeit(lambda: engine.run({name: x4}), max(1, per // 2), w)
        ]
        acc["decode"] += timeit(lambda: decode(jpg, limits), per, w)
        acc["preprocess"] += timeit(lambda: T.batch([T.preprocess(ops, img)]), per, w)
        acc["decode_preprocess"] += timeit(lambda: T.batch([T.preprocess(ops, decode(jpg, limits))]), per, w)
        acc["envelope"] += timeit(lambda: base64.b64decode(json.loads(body)["image"], validate=True), per, w)
        acc["service_inprocess"] += timeit(full, per, w)
    for k, v in acc.items():
        res[k + "_ms"] = summary(v)
    probs = engine.run({name: x})[0]
    res["top1"] = T.topk(probs, 1, T.build_topk(bundle.config).labels)[0][0].__dict__
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
