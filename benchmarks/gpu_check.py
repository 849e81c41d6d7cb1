"""GPU check, model part: every bundle's ONNX rendition on ``gpu:N`` through ONNX Runtime's CUDA provider,
checked against the bundle's own parity record and timed against the CPU provider in the same run.

Run by benchmarks/gpu_check.sh inside the GPU package's runtime venv (onnxruntime-gpu); needs an
NVIDIA GPU. Prints one JSON document; exit 0 when every bundle ran on the GPU and agreed.

    python benchmarks/gpu_check.py --models models --device gpu:0 [--runs 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "package"))

import onnxruntime as ort  # noqa: E402

from visionpack.bundle import load_bundle  # noqa: E402
from visionpack.errors import VisionpackError  # noqa: E402
from visionpack.inference import devices  # noqa: E402


def gpu_memory_mib() -> dict[str, int]:
    """MiB each process uses on the GPUs (nvidia-smi's compute-apps), by pid."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    except OSError:  # no nvidia-smi: --device cpu, the script's own dry run
        return {}
    used: dict[str, int] = {}
    for line in out.splitlines():
        pid, _, mib = line.partition(",")
        if mib.strip().isdigit():
            used[pid.strip()] = int(mib)
    return used


def timed(session: ort.InferenceSession, feeds: dict[str, np.ndarray], runs: int) -> tuple[list[np.ndarray], float]:
    outputs = session.run(None, feeds)  # warm-up (CUDA kernels, cuDNN algorithm search)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return outputs, statistics.median(times) * 1000


def compare(outputs: list[np.ndarray], expected: list[np.ndarray]) -> dict[str, float]:
    worst, cos_min = 0.0, 1.0
    for got, want in zip(outputs, expected):
        got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
        if got.shape != want.shape:
            return {"max_abs_diff": float("inf"), "cosine": -1.0}
        worst = max(worst, float(np.max(np.abs(got - want))) if got.size else 0.0)
        denom = float(np.linalg.norm(got) * np.linalg.norm(want))
        cos_min = min(cos_min, float(got @ want) / denom if denom else 1.0)
    return {"max_abs_diff": worst, "cosine": cos_min}


def check_bundle(path: Path, device: str, runs: int) -> dict[str, Any]:
    bundle = load_bundle(path)
    onnx, parity = bundle.formats.get("onnx"), bundle.parity
    if onnx is None or parity is None:
        return {"bundle": path.name, "skipped": "no ONNX rendition or parity.npz"}
    data = np.load(parity)
    feeds = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("input:")}
    expected = [data[f"output:{i}"] for i in range(sum(k.startswith("output:") for k in data.files))]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: paddle2onnx's unused initialisers are noise
    providers = devices.ort_providers(device, ort.get_available_providers())
    gpu = ort.InferenceSession(str(onnx), options, providers=providers)
    devices.check_session(device, gpu.get_providers())
    cpu = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    out_gpu, p50_gpu = timed(gpu, feeds, runs)
    out_cpu, p50_cpu = timed(cpu, feeds, runs)
    agreement = compare(out_gpu, expected)
    tol = bundle.parity_tolerance
    ok = agreement["max_abs_diff"] <= tol["max_abs_diff"] and agreement["cosine"] >= tol["cosine_min"]
    return {
        "bundle": path.name,
        "providers": gpu.get_providers(),
        "agrees": ok,
        "vs_paddle": agreement,
        "tolerance": tol,
        "gpu_vs_cpu_provider": compare(out_gpu, out_cpu),
        "p50_ms": {"gpu": round(p50_gpu, 3), "cpu": round(p50_cpu, 3)},
        "cpu_over_gpu": round(p50_cpu / p50_gpu, 2) if p50_gpu else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--device", default="gpu:0")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args(argv)
    devices.prepare_gpu(ort, args.device)
    results, ok = [], True
    for path in sorted(p for p in args.models.iterdir() if (p / "inference.yml").is_file()):
        try:
            # onnxruntime's wrapper prints its CUDA fallback notice on stdout: keep stdout the JSON's alone.
            with contextlib.redirect_stdout(sys.stderr):
                row = check_bundle(path, args.device, args.runs)
        except (VisionpackError, RuntimeError, ValueError) as exc:  # onnxruntime's own errors are RuntimeErrors
            row = {"bundle": path.name, "error": f"{type(exc).__name__}: {exc}"}
        ok = ok and "error" not in row and row.get("agrees", True) is not False
        results.append(row)
    ran = [r for r in results if "agrees" in r]
    doc = {
        "ok": ok and bool(ran),
        "device": args.device,
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "bundles": results,
        "rss_max_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gpu_memory_mib": gpu_memory_mib(),
    }
    print(json.dumps(doc, indent=1))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
