"""A/B of service variants (package copy, environment, config, workers), interleaved in rounds.

    .venv/bin/python benchmarks/ab_classification.py variants.json --rounds 3 --duration 12

``variants.json`` maps a name to ``{"workers": n, "package": dir, "conf": gunicorn_conf.py,
"env": {...}, "cfg": {...}}`` (all optional; ``conf`` pairs an older package with its own
start/gunicorn_conf.py), e.g.::

    {"base_1w": {"workers": 1},
     "kmp0_1w": {"workers": 1, "env": {"KMP_BLOCKTIME": "0"}},
     "patched_2w": {"workers": 2, "package": "/tmp/scratch/package"}}

All variants are started first and stay up (idle ones cost nothing measurable); each round then
runs every variant once, in rotating order: 100 single-client requests (EasyDL route) and an
8-client load (PaddleX route). Prints JSON: per variant the per-round requests/s, server CPU ms
per request, single-client p50, other processes' CPU, the CPU seconds of the busiest worker
threads, and RSS per worker. This is how the findings in README.md were measured.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import servers as S  # noqa: E402
from bench_classification import DEFAULT_BUNDLE, CpuWindow, log, make_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", type=Path)
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=12.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args(argv)
    variants: dict[str, dict[str, Any]] = json.loads(a.variants.read_text())

    work = Path(tempfile.mkdtemp(prefix="vp-ab-"))
    jpeg = work / "coffee_640x480.jpg"
    make_image(jpeg)
    b64 = base64.b64encode(jpeg.read_bytes()).decode("ascii")
    body_px, body_e = work / "paddlex.json", work / "easydl.json"
    body_px.write_text(json.dumps({"image": b64, "topk": 5}))
    body_e.write_text(json.dumps({"image": b64, "top_num": 5}))

    srv: dict[str, S.Server] = {}
    res: dict[str, dict[str, Any]] = {
        n: {
            "rps": [],
            "cpu_ms_per_request": [],
            "p50_1client_ms": [],
            "other_processes_cores": [],
            "busiest_threads_cpu_s": [],
        }
        for n in variants
    }
    try:
        for name, v in variants.items():
            log(f"starting {name}")
            srv[name] = S.start_gunicorn(
                name,
                a.bundle,
                int(v.get("workers", 1)),
                work,
                extra_cfg=v.get("cfg"),
                package=Path(v.get("package", S.REPO / "package")),
                env_extra=v.get("env"),
                conf=Path(v["conf"]) if v.get("conf") else None,
            )
        names = list(variants)
        for r in range(a.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                s = srv[name]
                S.run_loadgen(s.port, "/bench/ImageClassification", body_e, 1, requests=15)
                one = S.run_loadgen(s.port, "/bench/ImageClassification", body_e, 1, requests=100)
                with CpuWindow(s) as w:
                    lg = S.run_loadgen(
                        s.port, "/image-classification", body_px, a.clients, warmup=a.warmup, duration=a.duration
                    )
                rep = w.report(lg["client_cpu_s"], lg["requests_ok"])
                row = res[name]
                row["rps"].append(lg["rps"])
                row["cpu_ms_per_request"].append(
                    round(w.server_cpu * (lg["window_s"] / w.wall) * 1e3 / max(1, lg["requests_ok"]), 2)
                )
                row["p50_1client_ms"].append(one["latency_ms"]["p50"])
                row["other_processes_cores"].append(rep["other_processes_cores"])
                row["busiest_threads_cpu_s"].append(rep["busiest_worker_threads_cpu_s"])
                log(
                    f"round {r + 1} {name}: {lg['rps']} req/s, {row['cpu_ms_per_request'][-1]} ms CPU/req, "
                    f"1-client p50 {one['latency_ms']['p50']} ms"
                )
        for name in names:
            res[name]["rss_mib"] = [w["rss_mib"] for w in srv[name].memory()["workers"]]
            res[name]["median"] = {
                k: statistics.median(res[name][k])
                for k in ("rps", "cpu_ms_per_request", "p50_1client_ms", "other_processes_cores")
            }
    finally:
        for s in srv.values():
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"variants": variants, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
