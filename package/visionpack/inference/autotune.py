"""One backend's measurements for a release's models: loads, agrees with the bundle's parity record, how fast.

Run by the installer (installer/tune.py) in the release's runtime venv, once per backend and in a
process of its own, so that a backend that cannot even be imported (or crashes) costs only its
own answer: ``python -m visionpack.inference.autotune --config RELEASE/config.yml --backend KIND
--out FILE``. It never chooses: installer/tune.py does, from every backend's answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import config as config_mod
from ..bundle import Bundle, load_bundle
from ..config import BACKENDS, ServiceConfig
from ..errors import VisionpackError
from .engine import create_engine
from .formats import why_not

# Timing: a few warm-up runs, then runs until both limits are met (or MAX_RUNS): enough for a
# stable p50 on a loaded 2-core machine without making install slow.
WARMUP, MIN_RUNS, MAX_RUNS, MIN_SECONDS = 3, 10, 200, 0.3


# Tasks whose outputs hold detection rows [class, score, x1, y1, x2, y2]: OpenVINO returns the
# same NMS boxes as Paddle in another order, so rows are compared in one canonical order.
ROW_TASKS = ("object_detection", "face_detection")


def canonical_rows(a: np.ndarray) -> np.ndarray:
    """[N, 6] detection rows sorted by class, -score, x1, y1 (rounded to 1e-3); others unchanged."""
    if a.ndim != 2 or a.shape[1] != 6 or a.shape[0] < 2:
        return a
    r = np.round(np.asarray(a, np.float64), 3)
    return a[np.lexsort((r[:, 3], r[:, 2], -r[:, 1], r[:, 0]))]


def agreement(got: list[np.ndarray], want: list[np.ndarray], rows: bool = False) -> dict[str, Any]:
    """max abs diff and the lowest cosine over the outputs; ``why`` when shapes differ.
    ``rows``: detection outputs, compared in :func:`canonical_rows` order."""
    if rows:
        got, want = [canonical_rows(g) for g in got], [canonical_rows(w) for w in want]
    if len(got) != len(want):
        return {"why": f"{len(got)} outputs, the record has {len(want)}"}
    diff, cosine = 0.0, 1.0
    for i, (g, w) in enumerate(zip(got, want)):
        if np.shape(g) != np.shape(w):
            return {"why": f"output {i} has shape {tuple(np.shape(g))}, the record {tuple(np.shape(w))}"}
        a, b = np.asarray(g, np.float64).ravel(), np.asarray(w, np.float64).ravel()
        if a.size == 0:
            continue
        diff = max(diff, float(np.max(np.abs(a - b))))
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        cosine = min(cosine, 1.0 if na == nb == 0.0 else float(a @ b) / max(na * nb, 1e-30))
    return {"max_abs_diff": diff, "cosine": cosine}


def parity_record(bundle: Bundle) -> tuple[dict[str, np.ndarray], list[np.ndarray]] | None:
    """(inputs by name, Paddle's outputs in order) from the bundle's parity.npz; None without one."""
    if bundle.parity is None:
        return None
    with np.load(bundle.parity, allow_pickle=False) as npz:
        inputs = {k.split(":", 1)[1]: npz[k] for k in npz.files if k.startswith("input:")}
        outputs = [npz[f"output:{i}"] for i in range(sum(k.startswith("output:") for k in npz.files))]
    return inputs, outputs


def measure_model(bundle: Bundle, cfg: ServiceConfig, kind: str, timed: bool = True) -> dict[str, Any]:
    """One model on one backend: {"ok", "why"} and, when it loads, agreement and (``timed``) p50/p95 in ms."""
    why = why_not(bundle, kind)
    if why:
        return {"ok": False, "why": why}
    record = parity_record(bundle)
    if record is None:
        return {"ok": False, "why": f"bundle {bundle.name} has no parity record (parity.npz) to check against"}
    inputs, want = record
    try:
        engine = create_engine(bundle, dataclasses.replace(cfg, backend=kind, model_backends={}))
        got = [np.asarray(o) for o in engine.run(inputs)]
    except (VisionpackError, RuntimeError, ValueError, OSError) as exc:
        return {"ok": False, "why": f"does not load or run: {exc}"[:500]}
    out: dict[str, Any] = {"precision": str(getattr(engine, "precision", "f32"))}
    out.update(agreement(got, want, rows=bundle.task in ROW_TASKS))
    tol = bundle.parity_tolerance
    if "why" in out:
        out.update(ok=False, why=f"disagrees with Paddle: {out['why']}")
    elif out["max_abs_diff"] > tol["max_abs_diff"] or out["cosine"] < tol["cosine_min"]:
        out.update(
            ok=False,
            why=f"disagrees with Paddle: max abs diff {out['max_abs_diff']:.3g} (tolerance "
            f"{tol['max_abs_diff']:.3g}), cosine {out['cosine']:.6f} (minimum {tol['cosine_min']})",
        )
    else:
        out["ok"] = True
    if timed:
        out.update(timing(engine, inputs))
    return out


def timing(engine: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    for _ in range(WARMUP):
        engine.run(inputs)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - start < MIN_SECONDS):
        t = time.perf_counter()
        engine.run(inputs)
        times.append((time.perf_counter() - t) * 1000.0)
    p50, p95 = np.percentile(times, [50, 95])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "runs": len(times)}


def measure(cfg: ServiceConfig, kind: str) -> dict[str, Any]:
    """Every model of the deploy on backend ``kind`` (this process's RSS after them)."""
    models = {role: measure_model(load_bundle(path), cfg, kind) for role, path in sorted(cfg.models.items())}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"backend": kind, "models": models, "peak_rss_mib": round(rss_kib / 1024.0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visionpack.inference.autotune")
    parser.add_argument("--config", required=True)
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument("--out", required=True)
    a = parser.parse_args(argv)
    cfg = config_mod.load(a.config, env={})
    result = measure(cfg, a.backend)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
