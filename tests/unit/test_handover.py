"""visionpack/handover.py: the listening socket and the slot descriptor passed from master to master,
the per-release address of container masters, a standby worker held off the public socket."""

from __future__ import annotations

import os
import socket

import pytest

from visionpack import handover


def test_handover_passes_the_listening_socket_and_a_slot_descriptor(tmp_path):
    listener = handover.bind_probe()
    slot = os.open(tmp_path / "slot", os.O_RDWR | os.O_CREAT)
    srv = handover.serve(lambda: ([listener.fileno(), slot], {"fds": ["listener", "slot"], "release": "r"}))
    try:
        got = handover.fetch(os.getpid())
        try:
            assert got.info["release"] == "r" and got.slot_fd is not None
            port = listener.getsockname()[1]
            assert got.public(port) is not None and got.public(port + 1) is None
            # The same socket: a client queued on it is accepted through the handed-over copy.
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                conn, _ = got.public(port).accept()
                conn.close()
            assert os.fstat(got.slot_fd).st_ino == os.fstat(slot).st_ino
        finally:
            got.close()
    finally:
        srv.close()
        listener.close()
        os.close(slot)
    with pytest.raises(OSError):
        handover.fetch(os.getpid(), timeout=1)  # closed: nothing answers any more


def test_container_masters_serve_the_handover_under_their_release_not_their_pid(tmp_path):
    # Every container's master is pid 1 and containers share the host's abstract sockets:
    # two releases (of one deploy, or of two roots) get two addresses, both usable at once.
    one, two = str(tmp_path / "a" / "releases" / "1.0"), str(tmp_path / "b" / "releases" / "1.0")
    assert handover.release_address(one) != handover.release_address(two) != handover.address(1)
    assert handover.release_address(one) == handover.release_address(one + "/")  # config.yml may end in /
    listeners = [handover.bind_probe(), handover.bind_probe()]
    servers = [
        handover.serve(
            lambda i=i: ([listeners[i].fileno()], {"fds": ["listener"], "release": str(i)}), handover.release_address(r)
        )
        for i, r in enumerate((one, two))
    ]
    try:
        for i, r in enumerate((one, two)):
            got = handover.fetch(None, addr=handover.release_address(r))
            try:
                assert got.info["release"] == str(i) and got.public(listeners[i].getsockname()[1]) is not None
            finally:
                got.close()
    finally:
        for s in servers + listeners:
            s.close()


def test_hold_public_keeps_a_standby_worker_off_the_public_socket_until_the_flag(tmp_path):
    import threading
    import time

    public, probe = handover.bind_public("127.0.0.1", 0), handover.bind_probe()
    port = public.getsockname()[1]

    class Worker:
        """What hold_public needs of api.front.FrontWorker: sockets, alive, add_listener."""

        alive = True

        def __init__(self):
            self.sockets = [public, probe]
            self.added = []
            self.lock = threading.Lock()

        def add_listener(self, s):  # thread-safe in the real worker (call_soon_threadsafe)
            with self.lock:
                self.sockets.append(s)
                self.added.append(s)

    w = Worker()
    flag = tmp_path / "serve-public"
    assert handover.hold_public(w, port, str(flag)) is True
    assert w.sockets == [probe]
    time.sleep(0.2)
    assert w.added == []
    flag.write_text("1")
    deadline = time.monotonic() + 5
    while not w.added and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.sockets == [probe, public] and w.added == [public]
    assert handover.hold_public(w, port, str(flag)) is False  # flag exists: not held
    assert handover.hold_public(w, port, None) is False
    assert handover.hold_public(object(), port, str(tmp_path / "no-flag")) is False  # not our worker class
    public.close()
    probe.close()
