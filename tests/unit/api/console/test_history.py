"""The overview's numbers: /metrics text (as api/metrics.py renders it) parsed into samples, the
per-worker history, the windows between samples, percentiles, and the charts' geometry."""

from __future__ import annotations

import math

import pytest

from visionpack.api.console import charts as C
from visionpack.api.console.history import History, Sample, parse, percentile, window
from visionpack.api.metrics import Metrics


def rendered(observations) -> str:
    m = Metrics()
    for route, code, seconds in observations:
        m.start()
        m.observe(route, code, seconds)
    return m.render()


def test_parse_reads_what_the_service_renders():
    text = rendered(
        [
            ("easydl_classify", 0, 0.004),
            ("easydl_classify", 0, 0.03),
            ("easydl_classify", 336002, 0.001),
            ("paddlex_classify", 422, 0.2),
        ]
    )
    s = parse(text, 100.0)
    assert s.at == 100.0 and s.total == 4
    assert s.requests == {("easydl_classify", "0"): 2, ("easydl_classify", "336002"): 1, ("paddlex_classify", "422"): 1}
    assert s.by_code() == {"0": 2, "336002": 1, "422": 1}
    assert s.by_route() == {"easydl_classify": (3, 1), "paddlex_classify": (1, 1)}
    assert s.buckets[0.005] == 2 and s.buckets[0.05] == 3 and s.buckets[0.25] == 4 and s.buckets[math.inf] == 4
    assert s.inflight == 0


def test_parse_skips_what_it_does_not_know():
    text = "\n".join(
        [
            "# HELP visionpack_requests_total x",
            "garbage line",
            'visionpack_requests_total{route="r"} 3',  # no code
            'visionpack_requests_total{route="r",code="0"} NaN',
            'visionpack_requests_total{route="r",code="0"} 2',
            'visionpack_requests_total{route="a\\"b",code="6"} 1',
            'visionpack_request_duration_seconds_bucket{route="r",le="x"} 1',
            "visionpack_requests_in_flight 3",
            "other_metric 7",
            "",
        ]
    )
    s = parse(text, 0.0)
    assert s.requests == {("r", "0"): 2, ('a\\"b', "6"): 1}
    assert s.buckets == {} and s.inflight == 3


@pytest.mark.parametrize(
    "buckets, q, expected",
    [
        ({}, 0.5, None),
        ({0.1: 0, math.inf: 0}, 0.5, None),
        ({0.1: 10, 1.0: 10, math.inf: 10}, 0.5, 0.05),  # half way into the first bucket
        ({0.1: 0, 1.0: 10, math.inf: 10}, 0.5, 0.55),
        ({0.1: 5, 1.0: 10, math.inf: 10}, 0.99, 0.1 + 0.9 * (9.9 - 5) / 5),
        ({0.1: 5, 1.0: 5, math.inf: 10}, 0.9, 1.0),  # beyond the largest bound: that bound
        ({0.1: 10, 0.2: 10, math.inf: 10}, 1.0, 0.1),
    ],
)
def test_percentile_interpolates_like_prometheus(buckets, q, expected):
    got = percentile(buckets, q)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_a_window_is_the_difference_and_survives_a_restart():
    a = parse(rendered([("r", 0, 0.01)] * 4 + [("r", 6, 0.01)]), 10.0)
    b = parse(rendered([("r", 0, 0.01)] * 10 + [("r", 6, 0.01)] * 3 + [("r", 110, 0.3)]), 12.0)
    w = window(a, b)
    assert w.seconds == 2.0 and w.requests == 9 and w.rate == 4.5
    assert w.errors == {"6": 2, "110": 1} and w.error_rate("6") == 1.0
    assert w.latency(0.5) is not None and w.latency(0.5) < 0.025
    restarted = parse(rendered([("r", 0, 0.01)] * 2), 14.0)  # counters went down: counted from zero
    assert window(b, restarted).requests == 2


def test_history_samples_at_most_every_spacing_and_keeps_its_span():
    now = [1000.0]
    reads = []

    def read() -> str:
        reads.append(now[0])
        return rendered([("r", 0, 0.01)] * len(reads))

    h = History(span=10.0, spacing=2.0, clock=lambda: now[0])
    assert len(h.record(read)) == 1
    now[0] += 1.0
    assert len(h.record(read)) == 1 and len(reads) == 1  # too soon: no new sample
    for _ in range(10):
        now[0] += 2.0
        samples = h.record(read)
    assert all(s.at >= now[0] - 10.0 for s in samples) and len(samples) == 6
    assert [w.requests for w in h.windows(samples)] == [1] * 5
    now[0] -= 100.0  # the clock went back: start again rather than draw backwards
    assert len(h.record(read)) == 1


def test_nice_ceiling():
    assert [C.nice_ceiling(v) for v in (0, -1, 0.3, 1, 1.2, 4.9, 5, 7, 0.042, 230)] == [
        1,
        1,
        0.5,
        1,
        2,
        5,
        5,
        10,
        0.05,
        500,
    ]


def windows_of(counts, start=0.0, step=2.0, error_every=0):
    """Windows of ``counts[i]`` requests each (every ``error_every``-th one a 336002)."""
    obs: list = []
    samples, total = [parse(rendered(obs), start)], 0
    for i, n in enumerate(counts):
        for j in range(n):
            bad = error_every and (total + j) % error_every == 0
            obs.append(("r", 336002 if bad else 0, 0.02))
        total += n
        samples.append(parse(rendered(obs), start + step * (i + 1)))
    return samples, [window(a, b) for a, b in zip(samples, samples[1:])]


def test_charts_draw_each_series_in_the_box():
    _samples, ws = windows_of([2, 4, 0, 6], error_every=3)
    rate, errors, latency = C.all_charts(ws)
    assert rate.title == "Request rate" and rate.top == "5" and rate.span == "last 60 s"
    (line,) = rate.lines
    points = [tuple(map(float, p.split(","))) for p in line.runs[0].split()]
    assert len(points) == 4 and all(0 <= x <= C.WIDTH and 0 <= y <= C.HEIGHT for x, y in points)
    assert points[-1] == (C.WIDTH, pytest.approx(C.HEIGHT - 3 / 5 * (C.HEIGHT - C.TOP_PAD)))  # 6 in 2 s = 3/s
    assert line.last == "3"
    assert [x.name for x in errors.lines] == ["code 336002"]
    # No request in the third window: a gap in the latency lines, not a zero.
    assert [len(x.runs) for x in latency.lines] == [2, 2, 2] and latency.lines[0].last.endswith(" ms")


def test_a_lone_point_is_drawn_as_a_tick_and_a_young_history_waits():
    _samples, ws = windows_of([3])
    (line,) = C.all_charts(ws)[0].lines
    assert len(line.runs) == 1 and len(line.runs[0].split()) == 2
    empty = C.all_charts([])
    assert all(c.note.startswith("collecting") and not c.lines for c in empty)
    quiet = C.all_charts(windows_of([1, 1])[1])[1]
    assert quiet.note == "no error answers in this window" and quiet.lines == ()


def test_more_error_codes_than_colours_share_an_other_line():
    obs = [("r", code, 0.01) for code in (6, 110, 336001, 336002, 336004, 336005, 336006) for _ in range(2)]
    ws = [window(Sample(0.0), parse(rendered(obs), 2.0))]
    names = [x.name for x in C.all_charts(ws)[1].lines]
    assert len(names) == C.MAX_CODES + 1 and names[-1] == "other"


def test_numbers_since_start_and_lately():
    samples, ws = windows_of([10, 10, 10], error_every=5)
    n = C.numbers(samples, ws)
    assert (n.requests, n.errors, n.error_codes) == (30, 6, (("336002", 6),))
    assert n.recent_rate == "5" and n.recent_errors == "1" and n.samples == 4
    assert [name for name, _v in n.latency] == ["p50", "p95", "p99"] and n.latency[0][1].endswith(" ms")
    assert n.routes == (("r", 30, 6),)
    empty = C.numbers([], [])
    assert (empty.requests, empty.recent_rate, empty.latency[0][1]) == (0, "–", "–")
