"""Opportunistic batching: requests that queue while the engine is busy run as one batch.

Why: a CPU predictor runs a batch of n images for much less than n single runs (measured on
the demo classifier, 2 Paddle threads: 5.5 ms for one image, 3.3 ms per image in a batch of
4; benchmarks/README.md). Requests already wait for the engine under load, so batching what has
queued adds no waiting of its own: a request that finds the engine idle runs at once, alone.

How: no extra thread. The caller that finds the engine idle becomes the *leader*: it takes up
to ``max_batch`` queued items (its own is first), runs them, hands every result to its owner,
and passes leadership to the oldest item still queued. So each batch costs the one thread
wake-up the old lock cost, and a leader never serves longer than its own batch.

Pure logic (no Paddle): ``run`` is any callable from a list of inputs to a list of outputs of
the same length; errors it raises reach every caller of that batch.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Callable, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class _Item(Generic[In, Out]):
    __slots__ = ("value", "result", "error", "lead", "wake")

    def __init__(self, value: In) -> None:
        self.value = value
        self.result: Out | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.wake = threading.Event()


class Batcher(Generic[In, Out]):
    def __init__(self, run: Callable[[list[In]], Sequence[Out]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Item[In, Out]] = []
        self._busy = False
        # Counters for /metrics and the benchmark: how many batches, how many items in them.
        self.batches = 0
        self.items = 0

    def __call__(self, value: In) -> Out:
        item: _Item[In, Out] = _Item(value)
        with self._lock:
            self._queue.append(item)
            if self._busy:
                lead = False
            else:
                self._busy = lead = True
        if not lead:
            item.wake.wait()
            if not item.lead:
                return _outcome(item)
        self._lead()
        return _outcome(item)

    def _lead(self) -> None:
        # The leader's own item is at the head of the queue (it was queued while nobody led, or
        # it was handed the lead as the oldest item), so one batch always serves it.
        with self._lock:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        try:
            outs = self._run([it.value for it in batch])
            if len(outs) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(outs)} results")
        except BaseException as exc:  # every caller of this batch hears of it (raised in each)
            for it in batch:
                it.error = exc
        else:
            for it, out in zip(batch, outs):
                it.result = out
        finally:
            with self._lock:
                self.batches += 1
                self.items += len(batch)
                nxt = self._queue[0] if self._queue else None
                if nxt is None:
                    self._busy = False
                else:
                    nxt.lead = True
            for it in batch[1:]:  # batch[0] is the leader's own item: it is not waiting
                it.wake.set()
            if nxt is not None:
                nxt.wake.set()


def _outcome(item: _Item[Any, Out]) -> Out:
    if item.error is not None:
        raise item.error
    return item.result  # type: ignore[return-value]
