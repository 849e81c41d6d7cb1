"""One client connection of the HTTP front (api/front.py): its streams and h11 state, and the
answers the front writes itself, for requests the app never saw (400, 408, 431).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterable
from typing import Any

import h11

from ..errors import InvalidArgument, VisionpackError
from . import envelopes as E

READ_CHUNK = 256 * 1024
# After an answer that ends a connection whose request was not read whole, keep reading (and
# discarding) briefly so the client sees the answer instead of a reset (nginx's lingering_close).
LINGER_SECONDS = 2.0
REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class _Closed(Exception):
    """The client went away, or a limit ended the connection."""


class Connection:
    """One client connection: its h11 state, stream pair and whether it waits idle."""

    __slots__ = ("reader", "writer", "h11", "peer", "idle", "idle_since", "task", "closing")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_header: int) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header)
        peer = writer.get_extra_info("peername")
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        self.idle = True  # waiting for the first byte of a request: safe to close
        self.idle_since = time.monotonic()
        self.task: asyncio.Task[Any] | None = None
        self.closing = False


async def send_error(
    conn: Connection,
    err: VisionpackError,
    status: int,
    *,
    log: Any,
    write_timeout: float,
    drain_bytes: int,
    why: str = "",
) -> None:
    """Answer a request the app never saw, readable by both dialects, then close.

    336001 (Invalid Argument) in the EasyDL fields; the HTTP status (400, 408, 431) says
    which transport limit it was, as in PaddleX's ``errorCode``."""
    doc = E.front_error(err, status=status)
    log.info(
        "log_id=%s front: %d %s from %s%s",
        doc["log_id"],
        status,
        err.detail,
        conn.peer[0],
        f" ({why})" if why else "",
    )
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    try:
        # Written by hand: our h11 state may be mid-parse and refuse to frame a response.
        raw = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n".encode()
            + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
            + b"\r\n"
            + body
        )
        conn.writer.write(raw)
        await asyncio.wait_for(conn.writer.drain(), write_timeout)
        await linger(conn, drain_bytes)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass


async def linger(conn: Connection, drain_bytes: int) -> None:
    """Half-close and discard what the client still sends, briefly, so it reads our answer."""
    try:
        if conn.writer.can_write_eof():
            conn.writer.write_eof()
        deadline = time.monotonic() + LINGER_SECONDS
        budget = drain_bytes
        while budget > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            chunk = await asyncio.wait_for(conn.reader.read(READ_CHUNK), left)
            if not chunk:
                break
            budget -= len(chunk)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def head_too_large(limit: int) -> VisionpackError:
    return InvalidArgument(f"the request head is over {limit} bytes")


async def readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until ``sock`` is readable; cancelling it leaves nothing behind."""
    fd = sock.fileno()
    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        loop.remove_reader(fd)
