"""The overview's numbers: ``/metrics`` text parsed into samples, a short history of them, and the
rates, error counts and latency percentiles the charts show.

The history is kept server-side, per worker: each console request for the overview samples the
same Prometheus text ``/metrics`` answers (summed over every worker, api/metrics.py) at most
once per ``spacing`` seconds and keeps ``span`` seconds of samples. Whichever worker answers
the page's next poll, its series is one of the same deploy-wide counters, so the rates agree;
nothing runs while nobody looks.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

REQUESTS = "visionpack_requests_total"
BUCKET = "visionpack_request_duration_seconds_bucket"
INFLIGHT = "visionpack_requests_in_flight"
OK_CODE = "0"  # routes.handle counts a success as code 0 in both dialects
PERCENTILES = (0.5, 0.95, 0.99)
_K = TypeVar("_K")  # a counter's key: a status code, or a bucket's upper bound

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    """One reading of ``/metrics``: counters summed over workers at time ``at`` (epoch seconds)."""

    at: float
    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (route, code) -> answered
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count, all routes
    inflight: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.requests.values())

    def by_code(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (_route, code), n in self.requests.items():
            out[code] = out.get(code, 0.0) + n
        return out

    def by_route(self) -> dict[str, tuple[float, float]]:
        """route -> (answered, errors)."""
        out: dict[str, tuple[float, float]] = {}
        for (route, code), n in self.requests.items():
            done, bad = out.get(route, (0.0, 0.0))
            out[route] = (done + n, bad + (n if code != OK_CODE else 0.0))
        return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if not math.isnan(value) else None


def parse(text: str, at: float) -> Sample:
    """The Prometheus text exposition of api/metrics.py as a :class:`Sample`; lines of other
    metrics, comments and malformed lines are skipped."""
    requests: dict[tuple[str, str], float] = {}
    buckets: dict[float, float] = {}
    inflight = 0.0
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        name, raw_labels, raw_value = m.groups()
        value = _number(raw_value)
        if value is None:
            continue
        labels = dict(_LABEL.findall(raw_labels or ""))
        if name == REQUESTS and "route" in labels and "code" in labels:
            key = (labels["route"], labels["code"])
            requests[key] = requests.get(key, 0.0) + value
        elif name == BUCKET and "le" in labels:
            le = _number(labels["le"])
            if le is not None:
                buckets[le] = buckets.get(le, 0.0) + value
        elif name == INFLIGHT:
            inflight = value
    return Sample(at, requests, buckets, inflight)


def percentile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile (seconds) of a cumulative histogram, interpolated inside its bucket the
    way Prometheus' ``histogram_quantile`` does; None without observations. Past the largest
    finite bound the answer is that bound."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]] if math.isinf(bounds[-1]) else max(buckets.values())
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = (le if not math.isinf(le) else lower), count
    return lower


def _delta(new: dict[_K, float], old: dict[_K, float]) -> dict[_K, float]:
    """Counter increments; a counter that went down (the service restarted) counts from zero."""
    out: dict[_K, float] = {}
    for key, value in new.items():
        before = old.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


@dataclass(frozen=True)
class Window:
    """What happened between two samples."""

    start: float
    end: float
    requests: float
    by_code: dict[str, float]
    buckets: dict[float, float]

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> dict[str, float]:
        return {code: n for code, n in self.by_code.items() if code != OK_CODE and n > 0}

    def error_rate(self, code: str) -> float:
        return self.by_code.get(code, 0.0) / self.seconds

    def latency(self, q: float) -> float | None:
        return percentile(self.buckets, q)


def window(old: Sample, new: Sample) -> Window:
    by_code = _delta(new.by_code(), old.by_code())
    return Window(old.at, new.at, sum(by_code.values()), by_code, _delta(new.buckets, old.buckets))


class History:
    """A worker's recent samples of ``/metrics`` (thread-safe)."""

    def __init__(self, span: float = 600.0, spacing: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.span = span
        self.spacing = spacing
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: list[Sample] = []

    def record(self, read_metrics: Callable[[], str]) -> list[Sample]:
        """Sample now unless the last sample is younger than ``spacing``; the samples kept, oldest first."""
        now = self._clock()
        with self._lock:
            if not self._samples or now - self._samples[-1].at >= self.spacing or now < self._samples[-1].at:
                sample = parse(read_metrics(), now)
                if self._samples and now < self._samples[-1].at:  # the clock went back: start over
                    self._samples.clear()
                self._samples.append(sample)
            horizon = now - self.span
            while len(self._samples) > 2 and self._samples[0].at < horizon:
                self._samples.pop(0)
            return list(self._samples)

    def windows(self, samples: list[Sample]) -> list[Window]:
        return [window(a, b) for a, b in zip(samples, samples[1:])]
