"""Prometheus text metrics, summed across gunicorn workers.

Each worker counts in memory and publishes a snapshot file under ``<run>/metrics/`` (at most
once a second, and on every scrape); ``/metrics`` on any worker sums all snapshots. Files of
dead workers stay so counters never go backwards; the master clears the directory when it
starts (gunicorn_conf on_starting).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One engine run (inference alone, no decoding): a few ms on the CPU, so finer buckets.
INFER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self, directory: str | os.PathLike[str] | None = None, batcher: Any = None) -> None:
        self._lock = threading.Lock()
        # The service's inference/batching.Batcher, if it batches: its counters are published too.
        self.batcher = batcher
        self.requests: dict[tuple[str, str], int] = {}
        self.hist: dict[str, list[float]] = {}  # route -> bucket counts + [sum, count]
        self.infer: dict[str, list[float]] = {}  # "backend|model" -> bucket counts + [sum, count]
        self.inflight = 0
        self.dir = Path(directory) if directory else None
        self._last_flush = 0.0
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        with self._lock:
            self.inflight += 1

    def observe(self, route: str, code: int | str, seconds: float) -> None:
        with self._lock:
            self.inflight -= 1
            key = (route, str(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            _add(self.hist.setdefault(route, [0.0] * (len(BUCKETS) + 2)), BUCKETS, seconds)
        if self.dir and time.monotonic() - self._last_flush > 1.0:
            self.flush()

    def observe_inference(self, backend: str, model: str, seconds: float) -> None:
        """One engine run's time (inference/engine.py's SerializedEngine reports it)."""
        with self._lock:
            _add(self.infer.setdefault(f"{backend}|{model}", [0.0] * (len(INFER_BUCKETS) + 2)), INFER_BUCKETS, seconds)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap = {
                "requests": [[r, c, n] for (r, c), n in self.requests.items()],
                "hist": {r: list(v) for r, v in self.hist.items()},
                "infer": {k: list(v) for k, v in self.infer.items()},
                "inflight": self.inflight,
                "pid": os.getpid(),
            }
        if self.batcher is not None:
            snap["batches"] = [self.batcher.batches, self.batcher.items]
        return snap

    def flush(self) -> None:
        if not self.dir:
            return
        self._last_flush = time.monotonic()
        tmp = self.dir / f".{os.getpid()}.tmp"
        # Not fsynced: metrics are not durable state, a lost snapshot costs nothing.
        tmp.write_text(json.dumps(self.snapshot()))
        os.replace(tmp, self.dir / f"{os.getpid()}.json")

    def _all_snapshots(self) -> list[dict[str, Any]]:
        own = self.snapshot()
        if not self.dir:
            return [own]
        self.flush()
        snaps = []
        for f in self.dir.glob("*.json"):
            try:
                snap = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if not _alive(int(snap.get("pid", 0))):
                snap["inflight"] = 0
            snaps.append(snap)
        return snaps

    def render(self) -> str:
        requests: dict[tuple[str, str], int] = {}
        hist: dict[str, list[float]] = {}
        infer: dict[str, list[float]] = {}
        inflight = 0
        batches: list[int] | None = None
        for snap in self._all_snapshots():
            if "batches" in snap:
                batches = [a + b for a, b in zip(batches or [0, 0], snap["batches"])]
            for r, c, n in snap["requests"]:
                requests[(r, c)] = requests.get((r, c), 0) + n
            for into, part in ((hist, snap["hist"]), (infer, snap.get("infer") or {})):
                for r, v in part.items():
                    acc = into.setdefault(r, [0.0] * len(v))
                    for i, x in enumerate(v):
                        acc[i] += x
            inflight += snap["inflight"]
        lines = [
            "# HELP visionpack_requests_total Requests answered, by route and result code.",
            "# TYPE visionpack_requests_total counter",
        ]
        for (r, c), n in sorted(requests.items()):
            lines.append(f'visionpack_requests_total{{route="{r}",code="{c}"}} {n}')
        lines += [
            "# HELP visionpack_request_duration_seconds Time from request to response.",
            "# TYPE visionpack_request_duration_seconds histogram",
        ]
        for r, v in sorted(hist.items()):
            for b, n in zip(BUCKETS, v):
                lines.append(f'visionpack_request_duration_seconds_bucket{{route="{r}",le="{b}"}} {int(n)}')
            lines.append(f'visionpack_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {int(v[-1])}')
            lines.append(f'visionpack_request_duration_seconds_sum{{route="{r}"}} {v[-2]:.6f}')
            lines.append(f'visionpack_request_duration_seconds_count{{route="{r}"}} {int(v[-1])}')
        lines += [
            "# HELP visionpack_inference_duration_seconds One engine run, by backend and model.",
            "# TYPE visionpack_inference_duration_seconds histogram",
        ]
        for key, v in sorted(infer.items()):
            backend, _, model = key.partition("|")
            labels = f'backend="{backend}",model="{model}"'
            for b, n in zip(INFER_BUCKETS, v):
                lines.append(f'visionpack_inference_duration_seconds_bucket{{{labels},le="{b}"}} {int(n)}')
            lines.append(f'visionpack_inference_duration_seconds_bucket{{{labels},le="+Inf"}} {int(v[-1])}')
            lines.append(f"visionpack_inference_duration_seconds_sum{{{labels}}} {v[-2]:.6f}")
            lines.append(f"visionpack_inference_duration_seconds_count{{{labels}}} {int(v[-1])}")
        lines += [
            "# HELP visionpack_requests_in_flight Requests being processed now.",
            "# TYPE visionpack_requests_in_flight gauge",
            f"visionpack_requests_in_flight {inflight}",
        ]
        if batches is not None:
            lines += [
                "# HELP visionpack_inference_batches_total Engine runs of batched inference (one per batch).",
                "# TYPE visionpack_inference_batches_total counter",
                f"visionpack_inference_batches_total {batches[0]}",
                "# HELP visionpack_inference_batched_images_total Images those runs served"
                " (divided by the batches: the mean batch size).",
                "# TYPE visionpack_inference_batched_images_total counter",
                f"visionpack_inference_batched_images_total {batches[1]}",
            ]
        return "\n".join(lines) + "\n"


def _add(h: list[float], buckets: tuple[float, ...], seconds: float) -> None:
    for i, b in enumerate(buckets):
        if seconds <= b:
            h[i] += 1
    h[-2] += seconds
    h[-1] += 1


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
