"""The overview's small charts and numbers, computed from a worker's metrics history (history.py).

Pure geometry: each chart is a few polylines in a fixed ``WIDTH`` x ``HEIGHT`` box, as strings
of numbers the template writes into an inline ``<svg>`` (Jinja escapes every label). A window
without requests leaves a gap in the latency lines rather than a fake zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .history import OK_CODE, PERCENTILES, Sample, Window, percentile

WIDTH, HEIGHT = 320, 96
TOP_PAD = 6
MIN_SPAN = 60.0  # seconds: a young history is drawn on a minute's axis, not stretched
MAX_CODES = 5  # error codes drawn separately; the rest is "other"
RECENT = 60.0  # "last minute" numbers
TICK = 4.0  # px: how a lone point is drawn


@dataclass(frozen=True)
class Line:
    name: str
    css: str  # the stroke's class in console.css (s0..s5)
    runs: tuple[str, ...]  # "x,y x,y ..." per unbroken run of values
    last: str  # the newest value, formatted


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    top: str  # the value at the top of the y axis, formatted
    span: str  # what the x axis covers, e.g. "last 4 min"
    lines: tuple[Line, ...]
    note: str = ""  # shown instead of lines while there is nothing to draw


@dataclass(frozen=True)
class Numbers:
    """Totals since the service started (the newest sample) and over the last minute."""

    requests: int
    errors: int
    error_codes: tuple[tuple[str, int], ...]  # (code, answers), most first
    latency: tuple[tuple[str, str], ...]  # ("p50", "12.3 ms"), ...
    inflight: int
    recent_rate: str
    recent_errors: str
    routes: tuple[tuple[str, int, int], ...]  # (route, answered, errors)
    samples: int


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0 or math.isnan(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10**exp
        if top >= value * (1 - 1e-9):
            return float(top)
    return float(10 ** (exp + 1))


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def fmt_ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.3g} ms"


def _span_text(seconds: float) -> str:
    return f"last {round(seconds)} s" if seconds < 120 else f"last {round(seconds / 60)} min"


def _line(
    name: str,
    css: str,
    points: list[tuple[float, float | None]],
    x: Callable[[float], float],
    y: Callable[[float], float],
    last: Callable[[float | None], str],
) -> Line:
    runs: list[str] = []
    current: list[tuple[float, float]] = []

    def close() -> None:
        if len(current) == 1:  # one point alone draws nothing: a short tick ending at it
            current.insert(0, (current[0][0] - TICK, current[0][1]))
        if current:
            runs.append(" ".join(f"{px:.1f},{py:.1f}" for px, py in current))
        current.clear()

    for t, v in points:
        if v is None:
            close()
        else:
            current.append((x(t), y(v)))
    close()
    newest = next((v for _t, v in reversed(points) if v is not None), None)
    return Line(name, css, tuple(runs), last(newest))


def chart(
    title: str,
    unit: str,
    windows: list[Window],
    series: list[tuple[str, Callable[[Window], float | None]]],
    last: Callable[[float | None], str] = fmt,
    scale: float = 1.0,
) -> Chart:
    """A chart of ``series`` (name, value of a window) over ``windows``, each point at its window's end."""
    if not windows:
        return Chart(title, unit, "", "", (), "collecting: the first numbers appear after the next sample")
    end = windows[-1].end
    span = max(end - windows[0].start, MIN_SPAN)
    start = end - span
    values = {name: [(w.end, f(w)) for w in windows] for name, f in series}
    peak = max((v * scale for pts in values.values() for _t, v in pts if v is not None), default=0.0)
    top = nice_ceiling(peak)

    def x(t: float) -> float:
        return (t - start) / span * WIDTH

    def y(v: float) -> float:
        return HEIGHT - (v * scale / top) * (HEIGHT - TOP_PAD)

    lines = tuple(_line(name, f"s{i}", pts, x, y, last) for i, (name, pts) in enumerate(values.items()))
    return Chart(title, unit, fmt(top), _span_text(span), lines)


def _top_codes(windows: list[Window]) -> list[str]:
    totals: dict[str, float] = {}
    for w in windows:
        for code, n in w.errors.items():
            totals[code] = totals.get(code, 0.0) + n
    return [c for c, _n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]


def _error_rate(code: str) -> Callable[[Window], float | None]:
    return lambda w: w.error_rate(code)


def _latency(q: float) -> Callable[[Window], float | None]:
    return lambda w: w.latency(q)


def all_charts(windows: list[Window]) -> list[Chart]:
    """The overview's three charts: request rate, error answers by code, latency percentiles."""
    codes = _top_codes(windows)
    shown, rest = codes[:MAX_CODES], set(codes[MAX_CODES:])
    error_series: list[tuple[str, Callable[[Window], float | None]]] = [(f"code {c}", _error_rate(c)) for c in shown]
    if rest:
        error_series.append(("other", lambda w: sum(w.error_rate(c) for c in rest)))
    errors = chart("Error answers by code", "per second", windows, error_series)
    if not shown and windows:
        errors = Chart(errors.title, errors.unit, errors.top, errors.span, (), "no error answers in this window")
    latency = chart(
        "Latency percentiles",
        "ms",
        windows,
        [(f"p{round(q * 100)}", _latency(q)) for q in PERCENTILES],
        last=lambda v: fmt_ms(v),
        scale=1000.0,
    )
    return [chart("Request rate", "requests per second", windows, [("all routes", lambda w: w.rate)]), errors, latency]


def numbers(samples: list[Sample], windows: list[Window]) -> Numbers:
    newest = samples[-1] if samples else Sample(0.0)
    by_code = newest.by_code()
    error_codes = tuple(
        sorted(((c, int(n)) for c, n in by_code.items() if c != OK_CODE and n > 0), key=lambda cn: (-cn[1], cn[0]))
    )
    recent = [w for w in windows if w.end >= newest.at - RECENT]
    seconds = sum(w.seconds for w in recent)
    rate = sum(w.requests for w in recent) / seconds if recent else None
    err = sum(sum(w.errors.values()) for w in recent) / seconds if recent else None
    routes = tuple((r, int(n), int(bad)) for r, (n, bad) in sorted(newest.by_route().items()))
    return Numbers(
        requests=int(newest.total),
        errors=sum(n for _c, n in error_codes),
        error_codes=error_codes,
        latency=tuple((f"p{round(q * 100)}", fmt_ms(percentile(newest.buckets, q))) for q in PERCENTILES),
        inflight=int(newest.inflight),
        recent_rate=fmt(rate),
        recent_errors=fmt(err),
        routes=routes,
        samples=len(samples),
    )
