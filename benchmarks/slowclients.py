"""Hostile-but-legal clients for the slow-client benchmark and tests: idle, slow-header, slow-body.

A :class:`Flood` holds N connections of each kind open against one server from a background
thread (one asyncio loop), re-opening any the server closes, so the pressure stays constant for
as long as it runs. Loopback only. :func:`timed_requests` is the "normal client": sequential
requests on one keep-alive connection, each timed.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FloodStats:
    opened: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow_header": 0, "slow_body": 0})
    closed_by_server: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow_header": 0, "slow_body": 0})
    refused: int = 0  # connect() failed (backlog full or listener gone)
    answers: dict[str, int] = field(default_factory=dict)  # first status line bytes the server sent


class Flood:
    """Keep ``idle`` + ``slow_header`` + ``slow_body`` connections open until :meth:`stop`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        idle: int = 500,
        slow_header: int = 20,
        slow_body: int = 20,
        path: str = "/",
        interval: float = 1.0,
        body_size: int = 100_000,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.counts = {"idle": idle, "slow_header": slow_header, "slow_body": slow_body}
        self.interval = interval
        self.body_size = body_size
        self.stats = FloodStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._open = {k: 0 for k in self.counts}

    def start(self, settle: float = 30.0) -> Flood:
        """Start, and return once every connection has been opened once (or ``settle`` passed)."""
        self._thread = threading.Thread(target=self._run, name="flood", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if all(self.stats.opened[k] >= n for k, n in self.counts.items()):
                break
            time.sleep(0.05)
        return self

    def open_now(self) -> dict[str, int]:
        return dict(self._open)

    def stop(self) -> FloodStats:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.stats

    def __enter__(self) -> Flood:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- inside the flood's thread -----------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._keep(kind)) for kind, n in self.counts.items() for _ in range(n)]
        await self._stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, kind: str) -> None:
        """One connection slot of ``kind``: open, misbehave, re-open when the server closes it."""
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.stats.refused += 1
                await asyncio.sleep(0.2)
                continue
            self.stats.opened[kind] += 1
            self._open[kind] += 1
            try:
                await getattr(self, "_" + kind)(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self._open[kind] -= 1
                writer.close()
            self.stats.closed_by_server[kind] += 1

    async def _answer_or_close(self, reader: asyncio.StreamReader) -> None:
        line = await reader.readline()
        if line:
            key = line.decode("latin-1").strip()[:40]
            self.stats.answers[key] = self.stats.answers.get(key, 0) + 1

    async def _idle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._answer_or_close(reader)  # sends nothing; returns when the server closes

    async def _slow_header(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            + "".join(f"X-Slow-{i}: {'a' * 20}\r\n" for i in range(400))
        ).encode()
        pending = asyncio.ensure_future(self._answer_or_close(reader))
        for i in range(0, len(head), 8):
            if pending.done():
                return
            writer.write(head[i : i + 8])
            await writer.drain()
            await asyncio.sleep(self.interval)
        await pending

    async def _slow_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            (
                f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {self.body_size}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        pending = asyncio.ensure_future(self._answer_or_close(reader))
        sent = 0
        while sent < self.body_size:
            if pending.done():
                return
            writer.write(b" " * 16)
            sent += 16
            await writer.drain()
            await asyncio.sleep(self.interval)
        await pending


def timed_requests(host: str, port: int, path: str, body: bytes, n: int, timeout: float = 30.0) -> dict[str, Any]:
    """``n`` sequential POSTs on one keep-alive connection (re-opened if the server closes it)."""
    lat: list[float] = []
    codes: dict[str, int] = {}
    failures: list[str] = []
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            took = time.perf_counter() - t0
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:120])
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            continue
        code = _code(resp.status, raw)
        codes[code] = codes.get(code, 0) + 1
        if code.endswith(":0"):
            lat.append(took)
        else:
            failures.append(code)
    conn.close()
    lat.sort()
    return {
        "n": n,
        "ok": len(lat),
        "failures": failures,
        "codes": codes,
        "p50_ms": _pct(lat, 0.5),
        "p95_ms": _pct(lat, 0.95),
        "max_ms": lat[-1] * 1000 if lat else None,
    }


def _code(status: int, raw: bytes) -> str:
    """``"<http status>:<error code>"``; error code 0 on success in either dialect."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return f"{status}:non-json"
    if not isinstance(doc, dict):
        return f"{status}:non-json"
    code = doc.get("error_code", doc.get("errorCode", 0))
    return f"{status}:{code}"


def _pct(sorted_s: list[float], q: float) -> float | None:
    if not sorted_s:
        return None
    return round(sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] * 1000, 2)
