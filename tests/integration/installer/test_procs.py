"""installer/procs.py with real processes: a stranger behind a stale pid file is never signalled,
and the start waits on a real loopback /ready for the master to serve, fail or exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.unit.installer.test_procs import paths  # noqa: F401 (fixture)
from visionpack.installer import procs


def test_stop_never_signals_a_stranger_behind_a_stale_pid_file(paths):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        paths.pidfile.write_text(str(stranger.pid))
        said = []
        assert procs.stop(paths, graceful=1, say=said.append) is False
        assert stranger.poll() is None, "a process that is not our gunicorn was signalled"
        assert not paths.pidfile.exists() and "stale" in said[0]
    finally:
        stranger.kill()
        stranger.wait()


class ReadyAfter:
    """A loopback /ready that answers 503 the first ``n`` times, then 200."""

    def __init__(self, n):
        import http.server
        import threading

        outer = self
        self.calls = 0

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.calls += 1
                code = 200 if outer.calls > n else 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ready": %s}' % (b"true" if code == 200 else b"false"))

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_start_of_a_still_booting_master_waits_until_it_serves(paths):
    srv = ReadyAfter(3)
    try:
        procs.await_running(paths, os.getpid(), "127.0.0.1", srv.port, timeout=30)
        assert srv.calls == 4
    finally:
        srv.close()


def test_a_master_that_never_gets_ready_fails_the_start_and_is_left_running(paths):
    from visionpack.errors import StartFailed

    srv = ReadyAfter(10**6)
    try:
        with pytest.raises(StartFailed, match=f"pid {os.getpid()} is running but not ready"):
            procs.await_running(paths, os.getpid(), "127.0.0.1", srv.port, timeout=0.5)
    finally:
        srv.close()


def test_a_master_that_exits_while_booting_fails_the_start(paths):
    from visionpack.errors import StartFailed

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    srv = ReadyAfter(10**6)
    try:
        with pytest.raises(StartFailed, match=f"pid {gone.pid}\\) exited before it was ready"):
            procs.await_running(paths, gone.pid, "127.0.0.1", srv.port, timeout=30)
    finally:
        srv.close()
