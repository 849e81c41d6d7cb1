"""A private network namespace for tests that need a real peer that is not loopback.

The namespace holds loopback and ``10.9.9.1`` on ``lo`` (the technique of
test_access_gunicorn.py: nothing in it reaches the host's network, nothing outside reaches
in). Processes started with :meth:`Netns.popen` run inside it; a client there connecting from
``10.9.9.1`` is, to a server there, a real TCP peer off this machine's loopback.

The test process stays in the host's namespace and reaches servers inside through
:meth:`Netns.forward`: a small forwarder that listens on the host's 127.0.0.1 and connects
inside the namespace (listening sockets are made before it enters the namespace, so they stay
outside; everything it connects afterwards is inside). Needs root (``unshare -n``, ``setns``).

Run as a script it is that forwarder: ``python netns_lab.py forward NS_PATH PORT...`` prints one
JSON line ``{"PORT": host_port, ...}`` and forwards until its stdin closes.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
from typing import Any

PEER = "10.9.9.1"
CLONE_NEWNET = 0x40000000
HOLDER = r"""
import subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", sys.argv[1] + "/32", "dev", "lo"], check=True)
print("ready", flush=True)
sys.stdin.read()  # until the test closes our stdin (or dies): then the namespace goes with us
"""


class Netns:
    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "-n", sys.executable, "-c", HOLDER, PEER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.holder.stdout.readline() if self.holder.stdout else ""
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"network namespace not set up (unshare -n needs root): {line!r}")
        self.path = f"/proc/{self.holder.pid}/ns/net"
        self._forwarders: list[subprocess.Popen] = []

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen:
        """``cmd`` started inside the namespace (nsenter execs it: the pid is the command's)."""
        return subprocess.Popen(["nsenter", f"--net={self.path}", "--", *cmd], **kw)

    def forward(self, *ports: int) -> dict[int, int]:
        """Host ports on 127.0.0.1 that reach ``127.0.0.1:port`` inside the namespace."""
        proc = subprocess.Popen(
            [sys.executable, __file__, "forward", self.path, *map(str, ports)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._forwarders.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        try:
            mapping = json.loads(line)
        except ValueError:
            raise RuntimeError(f"forwarder did not start: {line!r}") from None
        return {int(k): int(v) for k, v in mapping.items()}

    def close(self) -> None:
        for proc in [*self._forwarders, self.holder]:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# --- the forwarder (a separate process: setns changes the namespace of the calling thread) -----


def _enter(ns_path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns_path})")
    finally:
        os.close(fd)


def _pump(a: socket.socket, b: socket.socket) -> None:
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ, b)
    sel.register(b, selectors.EVENT_READ, a)
    try:
        while True:
            for key, _ in sel.select(timeout=600):
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        a.close()
        b.close()


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        client, _ = listener.accept()
        try:
            inside = socket.create_connection(("127.0.0.1", port), timeout=30)
            inside.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pump, args=(client, inside), daemon=True).start()


def forward_main(ns_path: str, ports: list[int]) -> None:
    listeners = {}
    for port in ports:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        listeners[port] = s
    _enter(ns_path)  # only sockets made from now on are inside
    for port, s in listeners.items():
        threading.Thread(target=_serve, args=(s, port), daemon=True).start()
    print(json.dumps({str(p): s.getsockname()[1] for p, s in listeners.items()}), flush=True)
    sys.stdin.read()


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "forward":
    forward_main(sys.argv[2], [int(p) for p in sys.argv[3:]])
