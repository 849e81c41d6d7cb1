"""Opportunistic batching (inference/batching.py): what queues while the engine is busy runs together."""

from __future__ import annotations

import random
import threading
import time

import pytest

from visionpack.inference.batching import Batcher


class GatedRun:
    """A run function that records its batches and can hold the first one until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, xs: list[int]) -> list[int]:
        self.batches.append(list(xs))
        self.started.set()
        self.release.wait(10)
        return [x * 10 for x in xs]


def call_in_threads(batcher: Batcher, values: list[int]) -> tuple[list[threading.Thread], dict[int, object]]:
    results: dict[int, object] = {}

    def one(v: int) -> None:
        try:
            results[v] = batcher(v)
        except Exception as exc:  # the test inspects it
            results[v] = exc

    threads = [threading.Thread(target=one, args=(v,)) for v in values]
    for t in threads:
        t.start()
    return threads, results


def wait_queued(batcher: Batcher, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(batcher._queue) < n:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.001)


def test_a_lone_request_runs_alone_and_at_once():
    run = GatedRun()
    b = Batcher(run, max_batch=8)
    assert b(3) == 30
    assert run.batches == [[3]]
    assert (b.batches, b.items) == (1, 1)


def test_requests_that_queue_while_the_engine_is_busy_run_as_one_batch():
    run = GatedRun(hold_first=True)
    b = Batcher(run, max_batch=8)
    first, res_first = call_in_threads(b, [1])
    assert run.started.wait(5)
    rest, res_rest = call_in_threads(b, [2, 3, 4, 5])
    wait_queued(b, 4)
    run.release.set()
    for t in first + rest:
        t.join(5)
    assert run.batches[0] == [1]
    assert sorted(run.batches[1]) == [2, 3, 4, 5] and len(run.batches) == 2
    assert res_first == {1: 10} and res_rest == {2: 20, 3: 30, 4: 40, 5: 50}


def test_max_batch_caps_a_batch_and_the_rest_follow_in_order():
    run = GatedRun(hold_first=True)
    b = Batcher(run, max_batch=2)
    first, _ = call_in_threads(b, [0])
    assert run.started.wait(5)
    rest, results = call_in_threads(b, [1, 2, 3, 4, 5])
    wait_queued(b, 5)
    run.release.set()
    for t in first + rest:
        t.join(5)
    assert all(len(batch) <= 2 for batch in run.batches)
    assert sorted(x for batch in run.batches for x in batch) == [0, 1, 2, 3, 4, 5]
    assert results == {v: v * 10 for v in range(1, 6)}
    assert b.items == 6 and b.batches == len(run.batches) == 4


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_still_runs():
    calls = []

    def run(xs):
        calls.append(list(xs))
        if -1 in xs:
            raise RuntimeError("paddle says no")
        return [x * 10 for x in xs]

    gate = threading.Event()

    def slow_run(xs):
        if xs == [0]:
            gate.wait(5)
        return run(xs)

    b = Batcher(slow_run, max_batch=8)
    first, res_first = call_in_threads(b, [0])
    time.sleep(0.05)
    bad, res_bad = call_in_threads(b, [-1, 7])
    wait_queued(b, 2)
    gate.set()
    for t in first + bad:
        t.join(5)
    assert res_first == {0: 0}
    assert all(isinstance(res_bad[v], RuntimeError) for v in (-1, 7))
    assert b(5) == 50  # not stuck: the failed batch handed the engine back


def test_a_run_that_returns_the_wrong_number_of_results_is_an_error_for_all():
    b = Batcher(lambda xs: [1], max_batch=4)
    assert b(1) == 1
    gate = threading.Event()
    b2 = Batcher(lambda xs: (gate.wait(5), [])[1] if xs == [0] else xs[:1], max_batch=4)
    first, res_first = call_in_threads(b2, [0])
    time.sleep(0.05)
    rest, res = call_in_threads(b2, [1, 2])
    wait_queued(b2, 2)
    gate.set()
    for t in first + rest:
        t.join(5)
    assert isinstance(res_first[0], RuntimeError)
    assert all(isinstance(res[v], RuntimeError) and "gave 1 results" in str(res[v]) for v in (1, 2))


def test_max_batch_below_one_is_refused():
    with pytest.raises(ValueError):
        Batcher(lambda xs: xs, max_batch=0)


def test_many_callers_each_get_their_own_answer_and_no_batch_overflows():
    sizes = []
    lock = threading.Lock()

    def run(xs):
        with lock:
            sizes.append(len(xs))
        time.sleep(random.uniform(0, 0.002))
        return [x * x for x in xs]

    b = Batcher(run, max_batch=3)
    errors: list[str] = []

    def client(base: int) -> None:
        for i in range(40):
            v = base * 1000 + i
            if b(v) != v * v:
                errors.append(f"{v} got a wrong answer")
            time.sleep(random.uniform(0, 0.001))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    assert errors == []
    assert b.items == 12 * 40 == sum(sizes)
    assert max(sizes) <= 3 and max(sizes) > 1  # batches did form under contention
    assert b._busy is False and b._queue == []
