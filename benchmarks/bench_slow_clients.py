"""Slow-client benchmark: a normal client's latency while idle, slow-header and slow-body floods
are held open, against our service and PaddleX serving in the same run.

    .venv/bin/python benchmarks/bench_slow_clients.py                 # ours + PaddleX (needs .paddlex-venv)
    .venv/bin/python benchmarks/bench_slow_clients.py --no-paddlex    # ours only

For each server (1 worker, the demo settings; PaddleX: `paddlex --serve`, one uvicorn process),
interleaved in rounds: the unloaded p50 of ``--requests`` sequential requests on one keep-alive
connection, then the same while a flood process holds ``--idle`` idle connections,
``--slow-header`` clients sending their head 8 bytes a second and ``--slow-body`` clients sending
a 100 KB body 16 bytes a second (re-opening whatever the server closes). Reported: p50/p95/max,
failures (anything but a successful answer, 336100 included) and loaded/unloaded p50. The bar
(issue 14): every request succeeds and loaded p50 <= 2x unloaded. JSON on stdout and in
benchmarks/results/slowclients-<UTC>.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import servers  # noqa: E402
from slowclients import Flood, timed_requests  # noqa: E402

REPO = BENCH.parent
BUNDLE = REPO / "models" / "efficientnet_lite0_imagenet"
PADDLEX_PY = REPO / ".paddlex-venv" / "bin" / "python"


def _flood_process(port: int, path: str, counts: dict[str, int], ready: Any, stop: Any, out: Any) -> None:
    flood = Flood("127.0.0.1", port, path=path, interval=1.0, **counts).start(settle=60)
    ready.set()
    stop.wait()
    out.put({"open_at_end": flood.open_now(), **flood.stop().__dict__})


def measure(port: int, path: str, body: bytes, n: int, counts: dict[str, int], timeout: float = 30.0) -> dict[str, Any]:
    unloaded = timed_requests("127.0.0.1", port, path, body, n, timeout=timeout)
    ctx = multiprocessing.get_context("fork")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_flood_process, args=(port, path, counts, ready, stop, out))
    proc.start()
    ready.wait(90)
    time.sleep(1.0)  # let the first slow heads and bodies get going
    loaded = timed_requests("127.0.0.1", port, path, body, n, timeout=timeout)
    stop.set()
    flood = out.get(timeout=60)
    proc.join(30)
    ratio = (loaded["p50_ms"] / unloaded["p50_ms"]) if loaded["p50_ms"] and unloaded["p50_ms"] else None
    return {
        "unloaded": unloaded,
        "loaded": loaded,
        "flood": flood,
        "p50_ratio": round(ratio, 2) if ratio else None,
        "bar_met": bool(ratio is not None and ratio <= 2.0 and not loaded["failures"] and loaded["ok"] == n),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-paddlex", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--slow-header", type=int, default=20)
    ap.add_argument("--slow-body", type=int, default=20)
    ap.add_argument("--label", default="")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also measure an older checkout's package/ and start/ "
        "(e.g. `git archive 4603fa8 package start | tar -x -C DIR`: the gthread worker)",
    )
    args = ap.parse_args(argv)
    counts = {"idle": args.idle, "slow_header": args.slow_header, "slow_body": args.slow_body}
    image = base64.b64encode((REPO / "package" / "samples" / "cat.jpg").read_bytes()).decode()
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = Path(tempfile.mkdtemp(prefix="bench-slow-"))
    targets: list[tuple[str, Any, str, bytes]] = []
    ours = servers.start_gunicorn("ours", BUNDLE, 1, work)
    targets.append(("ours", ours, "/bench/ImageClassification", json.dumps({"image": image, "top_num": 5}).encode()))
    if args.before:
        old = Path(args.before)
        before = servers.start_gunicorn(
            "before", BUNDLE, 1, work, package=old / "package", conf=old / "start" / "gunicorn_conf.py"
        )
        targets.append(
            ("before", before, "/bench/ImageClassification", json.dumps({"image": image, "top_num": 5}).encode())
        )
    if not args.no_paddlex:
        sys.path.insert(0, str(REPO / "package"))
        from visionpack.bundle import load_bundle

        pipeline = servers.paddlex_pipeline_yaml(PADDLEX_PY, BUNDLE, load_bundle(BUNDLE).model_name, work / "pdx")
        pdx = servers.start_paddlex("paddlex", PADDLEX_PY, pipeline, work)
        targets.append(("paddlex", pdx, "/image-classification", json.dumps({"image": image}).encode()))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in targets}
    try:
        for _ in range(args.rounds):
            for name, srv, path, body in targets:
                # The old worker may hang each request for as long as the floods last: bound it.
                results[name].append(
                    measure(srv.port, path, body, args.requests, counts, timeout=10.0 if name == "before" else 30.0)
                )
    finally:
        for _, srv, *_ in targets:
            srv.stop()
    summary = {
        name: {
            "p50_ratio": [r["p50_ratio"] for r in rs],
            "unloaded_p50_ms": [r["unloaded"]["p50_ms"] for r in rs],
            "loaded_p50_ms": [r["loaded"]["p50_ms"] for r in rs],
            "loaded_failures": [len(r["loaded"]["failures"]) for r in rs],
            "bar_met": all(r["bar_met"] for r in rs),
        }
        for name, rs in results.items()
    }
    doc = {
        "benchmark": "slow_clients",
        "started": started,
        "flood": counts,
        "requests": args.requests,
        "rounds": args.rounds,
        "summary": summary,
        "runs": results,
    }
    out = BENCH / "results" / f"slowclients-{started}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc["summary"], indent=1))
    print(f"saved {out.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
