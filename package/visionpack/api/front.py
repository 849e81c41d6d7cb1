"""The HTTP front: a gunicorn worker class that reads each request whole before the app sees it.

gunicorn's gthread worker hands a connection to a request thread as soon as it is readable, and
the thread then blocks on the client for the rest of the head and the body: a few slow or idle
clients hold every thread, and a slow body holds an inference slot too (the app admits a request
before reading its body). Here one asyncio loop per worker owns every connection:

- the request head must arrive whole within ``header_timeout``; a body may pause at most
  ``body_timeout`` between reads (nginx's client_header_timeout / client_body_timeout);
- only a complete request reaches the thread pool that runs the Flask app, so a request thread
  (and the app's in-flight slot) is never spent waiting on a client;
- at ``max_connections`` per worker the longest-idle kept-alive connection is closed to make
  room, and accepting pauses while every connection is busy;
- a body over the limit is read and discarded up to ``max_drain_bytes`` (or refused before it is
  sent when the client asked ``Expect: 100-continue``), then the app answers 336004 in the
  route's own dialect (``environ["visionpack.body_too_large"]``), so common clients read the
  answer instead of a broken pipe;
- malformed heads, heads over ``max_header_bytes`` and requests that stall mid-way are answered
  in the JSON envelope with a log id (400, 431, 408), never gunicorn's HTML.

HTTP/1.1 parsing is h11's (python-hyper's sans-I/O parser); responses are written by the loop,
so a slow reader of the answer does not hold a thread either.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
from gunicorn.workers import base

from .. import config as config_mod
from ..access.guard import redact_target
from ..errors import InvalidArgument, VisionpackError
from . import wsgi
from .connection import (
    READ_CHUNK,
    Connection,
    _Closed,
    content_length,
    head_too_large,
    linger,
    readable,
    send_error,
)

# A stopping worker keeps kept-alive connections this long, for a request a client may already
# be sending on one (answered with "Connection: close" instead of dropped).
STOP_LINGER = 2.0
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection", b"te", b"trailer"}


class FrontWorker(base.Worker):
    """gunicorn worker: asyncio front for connections, a thread pool for the WSGI app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = config_mod.load()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conns: set[Connection] = set()
        self._pending_listeners: list[socket.socket] = []
        self._listener_lock = threading.Lock()
        self._accepting: dict[int, asyncio.Task[None]] = {}
        self._opening = 0  # accepted, streams not yet made: counted against max_connections
        self._room = asyncio.Event()
        # Request bodies held in memory by this worker, reserved before they are read.
        self.buffered = 0
        self._freed = asyncio.Event()

    # --- gunicorn hooks --------------------------------------------------------------------

    def init_process(self) -> None:
        # Every connection is a descriptor: let max_connections fit under the soft limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.settings.max_connections + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        super().init_process()

    def run(self) -> None:
        threads = max(1, int(self.cfg.threads))
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="visionpack-req")
        try:
            asyncio.run(self._main())
        finally:
            self.pool.shutdown(wait=False)

    def add_listener(self, sock: socket.socket) -> None:
        """Start accepting on ``sock`` (thread-safe; the standby handover calls it late)."""
        with self._listener_lock:
            self.sockets.append(sock)
            loop = self.loop
            if loop is None:
                return  # _main() starts every socket in self.sockets
        loop.call_soon_threadsafe(self._start_accepting, sock)

    # --- the loop ----------------------------------------------------------------------------

    async def _main(self) -> None:
        with self._listener_lock:
            self.loop = asyncio.get_running_loop()
            for sock in list(self.sockets):
                self._start_accepting(sock)
        self._room.set()
        while self.alive:
            self.notify()
            if os.getppid() != self.ppid:
                self.log.info("Parent changed, shutting down: %s", self)
                break
            if len(self.conns) < self.settings.max_connections:
                self._room.set()
            await asyncio.sleep(0.5)
        await self._stop()

    def _start_accepting(self, sock: socket.socket) -> None:
        if sock.fileno() in self._accepting or not self.alive:
            return
        sock.setblocking(False)
        self._accepting[sock.fileno()] = asyncio.get_running_loop().create_task(self._accept_loop(sock))

    async def _accept_loop(self, listener: socket.socket) -> None:
        # accept() itself is synchronous: only the wait for readiness is an await point, so
        # stopping (which cancels this task) can never drop a connection already accepted. An
        # awaited loop.sock_accept() could: its result is lost when the cancel lands after the
        # kernel handed the connection over, and the client gets a reset.
        loop = asyncio.get_running_loop()
        while self.alive:
            if len(self.conns) + self._opening >= self.settings.max_connections and not self._make_room():
                self._room.clear()
                await self._room.wait()
                continue
            try:
                client, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                await readable(loop, listener)  # another worker may win the race: loop again
                continue
            except ConnectionAbortedError:
                continue
            except OSError as exc:  # EMFILE and friends: back off instead of spinning
                self.log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self._opening += 1
            loop.create_task(self._open(client))

    async def _open(self, client: socket.socket) -> None:
        """Wrap an accepted socket in streams and serve it (a task stopping never cancels)."""
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader, writer = await asyncio.open_connection(sock=client, limit=READ_CHUNK)
        except OSError:
            client.close()
            return
        finally:
            self._opening -= 1
        conn = Connection(reader, writer, self.settings.max_header_bytes)
        self.conns.add(conn)
        conn.task = asyncio.current_task()
        await self._serve(conn)

    def _make_room(self) -> bool:
        """Close the longest-idle connection to admit a new one (nginx reuses keep-alive slots so)."""
        idle = [c for c in self.conns if c.idle and not c.closing]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since)
        oldest.closing = True
        oldest.writer.close()
        return True

    async def _stop(self) -> None:
        for task in self._accepting.values():
            task.cancel()
        await asyncio.gather(*self._accepting.values(), return_exceptions=True)
        # Idle connections linger briefly: a request already on its way is still answered.
        deadline = time.monotonic() + self.cfg.graceful_timeout
        linger_until = time.monotonic() + STOP_LINGER
        while (self.conns or self._opening) and time.monotonic() < deadline:
            self.notify()
            if time.monotonic() >= linger_until:
                for conn in list(self.conns):
                    if conn.idle and not conn.closing:
                        conn.closing = True
                        conn.writer.close()
            await asyncio.sleep(0.05)
        for conn in list(self.conns):
            if conn.task is not None:
                conn.task.cancel()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass

    # --- one connection ------------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> None:
        try:
            while True:
                if not await self._one_request(conn):
                    break
                conn.h11.start_next_cycle()
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug here must not take the worker down with it
            self.log.exception("front: error on a connection from %s", conn.peer[0])
        finally:
            self.conns.discard(conn)
            self._room.set()
            try:
                conn.writer.close()
            except Exception:  # noqa: BLE001 (already gone)
                pass

    async def _one_request(self, conn: Connection) -> bool:
        """Read, dispatch and answer one request; True to keep the connection for another."""
        s = self.settings
        conn.idle, conn.idle_since = True, time.monotonic()
        first_wait = (
            s.keepalive_timeout if conn.h11.their_state is h11.IDLE and self._served(conn) else s.header_timeout
        )
        head_deadline: float | None = None
        started = 0.0
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(conn, exc)
                return False
            if event is h11.NEED_DATA:
                timeout = first_wait if head_deadline is None else head_deadline - time.monotonic()
                data = await self._read(conn, timeout, on_timeout=None if head_deadline is None else "head")
                if head_deadline is None:
                    # The head's clock starts with its first byte (an idle connection is the
                    # keep-alive timeout's business, not the header timeout's).
                    started = time.monotonic()
                    head_deadline = started + s.header_timeout
                    conn.idle = False
                conn.h11.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return False
            if isinstance(event, h11.Request):
                conn.idle = False
                # h11 bounds only a head still incomplete; one that arrived in a single read
                # is measured here.
                if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > s.max_header_bytes:
                    await self._send_error(conn, head_too_large(s.max_header_bytes), 431)
                    return False
                return await self._handle(conn, event, started or time.monotonic())
            # h11 yields nothing else before a Request on a server connection
            return False

    @staticmethod
    def _served(conn: Connection) -> bool:
        return conn.h11.their_http_version is not None

    async def _read(self, conn: Connection, timeout: float, on_timeout: str | None) -> bytes:
        if timeout <= 0:
            await self._timed_out(conn, on_timeout)
        try:
            data = await asyncio.wait_for(conn.reader.read(READ_CHUNK), timeout)
        except asyncio.TimeoutError:
            await self._timed_out(conn, on_timeout)
            raise  # not reached: _timed_out always raises
        if not data:
            raise _Closed()  # the client hung up (between requests or mid-way: nobody to answer)
        return data

    async def _timed_out(self, conn: Connection, what: str | None) -> None:
        if what is not None and conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send_error(conn, InvalidArgument(f"the request {what} did not arrive in time"), 408)
        raise _Closed()

    async def _protocol_error(self, conn: Connection, exc: h11.RemoteProtocolError) -> None:
        if conn.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        if exc.error_status_hint == 431:
            await self._send_error(conn, head_too_large(self.settings.max_header_bytes), 431)
        else:
            await self._send_error(conn, InvalidArgument("the request is not valid HTTP/1.1"), 400, why=str(exc)[:80])

    async def _send_error(self, conn: Connection, err: VisionpackError, status: int, why: str = "") -> None:
        await send_error(
            conn,
            err,
            status,
            log=self.log,
            write_timeout=self.settings.body_timeout,
            drain_bytes=self.settings.max_drain_bytes,
            why=why,
        )

    async def _handle(self, conn: Connection, req: h11.Request, started: float) -> bool:
        s = self.settings
        limit = s.max_body_bytes()
        declared = content_length(req.headers)
        reserved = 0
        too_large: int | None
        try:
            if (
                declared is not None
                and declared > limit
                and (conn.h11.they_are_waiting_for_100_continue or declared > s.max_drain_bytes)
            ):
                # Refuse before reading: the client waits for our go (100-continue), or the
                # body is too absurd to drain.
                body, too_large = b"", declared
            else:
                reserved = await self._reserve(min(declared if declared is not None else limit, limit))
                read = await self._read_body(conn, started, limit)
                if read is None:
                    return False
                body, too_large = read
            environ = wsgi.environ(
                req,
                body,
                too_large,
                conn.peer,
                conn.writer.get_extra_info("sockname"),
                multiprocess=self.cfg.workers > 1,
            )
            del body
            status, reason, headers, payload = await asyncio.get_running_loop().run_in_executor(
                self.pool, wsgi.call, self.wsgi, environ, self.log
            )
        finally:
            self._release(reserved)
        self.nr += 1
        keep = conn.h11.their_state is h11.DONE and self.alive and conn.h11.our_state is h11.SEND_RESPONSE
        out = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
        out.append((b"content-length", str(len(payload)).encode()))
        if not keep:
            out.append((b"connection", b"close"))
        try:
            data = conn.h11.send(h11.Response(status_code=status, headers=out, reason=reason))
            data += conn.h11.send(h11.Data(data=payload)) or b""
            data += conn.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            self.log.exception("front: cannot frame the app's answer")
            return False
        conn.writer.write(data)
        try:
            await asyncio.wait_for(conn.writer.drain(), s.body_timeout)
        except asyncio.TimeoutError:
            raise _Closed() from None
        self._access(conn, req, status, len(payload), headers, time.monotonic() - started)
        if not keep:
            if conn.h11.their_state is not h11.DONE:
                await linger(conn, self.settings.max_drain_bytes)
            return False
        return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE

    async def _read_body(self, conn: Connection, started: float, limit: int) -> tuple[bytes, int | None] | None:
        """(body, None), or (b"", bytes seen) when over ``limit``; None after a protocol error."""
        s = self.settings
        if conn.h11.they_are_waiting_for_100_continue:
            conn.writer.write(conn.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        got = 0
        while True:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(conn, exc)
                return None
            if event is h11.NEED_DATA:
                # nginx's client_body_timeout (between two reads), within the whole request's
                # deadline, so a trickling body cannot hold a connection forever.
                wait = min(s.body_timeout, started + s.request_timeout - time.monotonic())
                conn.h11.receive_data(await self._read(conn, wait, on_timeout="body"))
            elif isinstance(event, h11.Data):
                got += len(event.data)
                if got <= limit:
                    body += event.data
                elif body:
                    body = bytearray()  # over the limit: keep counting (draining), not storing
                if got > s.max_drain_bytes:
                    return b"", got
            elif isinstance(event, h11.EndOfMessage):
                return (bytes(body), None) if got <= limit else (b"", got)
            else:  # ConnectionClosed mid-body
                raise _Closed()

    async def _reserve(self, nbytes: int) -> int:
        """Wait until ``nbytes`` more of buffered bodies fit under max_buffered_bytes.

        Reserved before the body is read, so memory stays bounded by the cap plus one body
        however many clients send at once; a lone request always passes."""
        cap = self.settings.max_buffered_bytes
        while self.buffered and self.buffered + nbytes > cap:
            self._freed.clear()
            await self._freed.wait()
        self.buffered += nbytes
        return nbytes

    def _release(self, nbytes: int) -> None:
        self.buffered -= nbytes
        self._freed.set()

    def _access(
        self,
        conn: Connection,
        req: h11.Request,
        status: int,
        size: int,
        headers: list[tuple[bytes, bytes]],
        seconds: float,
    ) -> None:
        log = getattr(self.log, "access_log", None)
        if log is None or not log.handlers:
            return
        log_id = next((v.decode("latin-1") for k, v in headers if k.lower() == b"x-log-id"), "-")
        target = redact_target(req.target.decode("latin-1"))  # a key sent as ?access_token= stays out of the log
        log.info(
            '%s "%s %s" %d %d %.1fms log_id=%s',
            conn.peer[0],
            req.method.decode("ascii"),
            target[:200],
            status,
            size,
            seconds * 1000,
            log_id,
        )
