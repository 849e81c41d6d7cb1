"""Closed-loop HTTP load generator: N keep-alive connections, one request in flight on each.

    python benchmarks/loadgen.py --port P --path /image-classification --body req.json \
        --clients 8 --warmup 3 --duration 20            # throughput
    python benchmarks/loadgen.py ... --clients 1 --requests 200   # latency, one client

Prints one JSON object. Run it as its own process (the benchmark does), so its CPU is visible
and separate from the server's. It is deliberately cheap, because on a 2-core machine every
cycle it burns is taken from the server under test: the request bytes (headers + body) are
built once and re-sent with one ``sendall``; a response is read by Content-Length and only its
small JSON body is parsed (to count application errors). The same program and bytes are used
against every server, so its cost is the same per request for all of them; its CPU seconds
are reported so the reader can see the share. Standard library only; loopback only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from typing import Any

MAX_HEADER = 64 * 1024


class Conn:
    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.addr = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""
        self.reconnects = -1

    def _connect(self) -> socket.socket:
        s = socket.create_connection(self.addr, timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = s, b""
        self.reconnects += 1
        return s

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, payload: bytes) -> tuple[int, bytes]:
        """Send one request, return (status, body). Reconnects once if the server closed."""
        for attempt in (0, 1):
            s = self.sock or self._connect()
            try:
                s.sendall(payload)
                return self._read_response(s)
            except (ConnectionError, _Closed):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _recv(self, s: socket.socket) -> None:
        chunk = s.recv(65536)
        if not chunk:
            raise _Closed()
        self.buf += chunk

    def _read_response(self, s: socket.socket) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEADER:
                raise ValueError("response header too large")
            self._recv(s)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise ValueError("chunked responses are not supported by this client")
        if length is None:
            raise ValueError("response without Content-Length")
        self.buf = rest
        while len(self.buf) < length:
            self._recv(s)
        body, self.buf = self.buf[:length], self.buf[length:]
        if close:
            self.close()
        return status, body


class _Closed(Exception):
    pass


def app_ok(status: int, body: bytes) -> bool:
    """200 and no application error in either dialect's envelope."""
    if status != 200:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return doc.get("errorCode", 0) == 0 and "error_code" not in doc


def build_payload(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode("ascii")
    return head + body


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run(
    host: str,
    port: int,
    path: str,
    body: bytes,
    clients: int,
    warmup: float,
    duration: float | None,
    requests: int | None,
    timeout: float,
) -> dict[str, Any]:
    payload = build_payload(host, port, path, body)
    t_start = time.perf_counter()
    t0 = t_start + warmup
    t1 = t0 + duration if duration else float("inf")
    lock = threading.Lock()
    lat: list[float] = []
    errors: list[str] = []
    counts = {"ok": 0, "bad": 0, "sent_total": 0}
    first_body: list[bytes] = []
    remaining = [requests] if requests else None
    conns = [Conn(host, port, timeout) for _ in range(clients)]

    def worker(conn: Conn) -> None:
        while True:
            if remaining is not None:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
            start = time.perf_counter()
            if remaining is None and start >= t1:
                return
            try:
                status, resp = conn.request(payload)
            except Exception as exc:  # counted and reported; the run goes on
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    counts["bad"] += 1
                    if len(errors) > 50:
                        return
                continue
            end = time.perf_counter()
            ok = app_ok(status, resp)
            with lock:
                counts["sent_total"] += 1
                if not first_body:
                    first_body.append(resp)
                # Only requests that both start and end inside the window count (no warm-up tail).
                if remaining is not None or (start >= t0 and end <= t1):
                    if ok:
                        counts["ok"] += 1
                        lat.append(end - start)
                    else:
                        counts["bad"] += 1
                        if len(errors) < 5:
                            errors.append(f"HTTP {status}: {resp[:200]!r}")

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    # CPU of this process over the measured window only (all threads; process_time is per process).
    if remaining is None:
        time.sleep(max(0.0, t0 - time.perf_counter()))
    cpu0, w0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.join()
    cpu1, w1 = time.process_time(), time.perf_counter()
    for c in conns:
        c.close()
    window = (min(t1, w1) - t0) if remaining is None else (w1 - w0)
    n = counts["ok"]
    ms = [x * 1e3 for x in lat]
    return {
        "clients": clients,
        "path": path,
        "body_bytes": len(body),
        "requests_ok": n,
        "requests_failed": counts["bad"],
        "errors": errors[:5],
        "window_s": round(window, 3),
        "rps": round(n / window, 3) if window > 0 else None,
        "latency_ms": {
            "p50": _r(percentile(ms, 50)),
            "p95": _r(percentile(ms, 95)),
            "p99": _r(percentile(ms, 99)),
            "mean": _r(sum(ms) / len(ms) if ms else None),
            "min": _r(min(ms) if ms else None),
            "max": _r(max(ms) if ms else None),
        },
        "client_cpu_s": round(cpu1 - cpu0, 3),
        "client_cpu_ms_per_request": round((cpu1 - cpu0) * 1e3 / n, 4) if n else None,
        "reconnects": sum(max(0, c.reconnects) for c in conns),
        "sample_response": first_body[0][:400].decode("utf-8", "replace") if first_body else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--body", required=True, help="file holding the JSON request body")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds of load not measured")
    ap.add_argument("--duration", type=float, help="measured seconds (throughput mode)")
    ap.add_argument("--requests", type=int, help="total requests (latency mode; no warm-up window)")
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args(argv)
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("loopback only")
    if (a.duration is None) == (a.requests is None):
        ap.error("give exactly one of --duration or --requests")
    with open(a.body, "rb") as f:
        body = f.read()
    out = run(a.host, a.port, a.path, body, a.clients, a.warmup, a.duration, a.requests, a.timeout)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0 if out["requests_ok"] and not out["requests_failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
