"""Kept releases, previous, keep-N pruning, the switch's recovery decisions, the socket handover."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from visionpack import handover
from visionpack.installer import journal, releases, settings
from visionpack.installer.layout import Root


def state(current, installed, history):
    return {"release": current, "releases": {v: {"installed_at": at} for v, at in installed.items()},
            "history": [{"release": v} for v in history]}


def test_previous_is_what_ran_before_the_current_one():
    s = state("1.1", {"1.0": "2026-01-01", "1.1": "2026-01-02", "0.9": "2025-12-01"}, ["0.9", "1.0", "1.1"])
    assert releases.previous(s) == "1.0"
    s["history"].append({"release": "0.9"})  # rolled back to 0.9 ...
    s["release"] = "0.9"
    assert releases.previous(s) == "1.1"     # ... so "back" is 1.1, as helm rollback means it


def test_previous_skips_pruned_and_falls_back_to_the_newest_other():
    s = state("2.0", {"2.0": "2026-02-01", "1.5": "2026-01-15"}, ["1.0", "2.0"])  # 1.0 pruned
    assert releases.previous(s) == "1.5"
    assert releases.previous(state("1.0", {"1.0": "x"}, ["1.0"])) is None


def test_prune_keeps_n_newest_but_never_current_or_previous():
    installed = {f"1.{i}": f"2026-01-0{i + 1}" for i in range(6)}
    s = state("1.0", installed, ["1.4", "1.0"])  # rolled back from 1.4 to the oldest
    s["releases"]["1.0"]["activated_at"] = "2026-01-09"
    assert releases.to_prune(s, keep=3) == ["1.1", "1.2", "1.3"]  # kept: 1.0 current, 1.4 previous, 1.5 newest
    assert releases.to_prune(s, keep=2) == ["1.1", "1.2", "1.3", "1.5"]
    assert releases.to_prune(s, keep=10) == []


def test_keep_defaults_to_5_and_ignores_nonsense():
    assert releases.keep_of({}) == 5 and releases.keep_of({"keep": 1}) == 5 and releases.keep_of({"keep": 3}) == 3


def test_record_activation_bounds_the_history():
    s = {"releases": {}}
    for i in range(releases.HISTORY_MAX + 7):
        releases.record_activation(s, f"v{i}", "upgrade")
    assert len(s["history"]) == releases.HISTORY_MAX and s["history"][-1]["release"] == f"v{releases.HISTORY_MAX + 6}"


@pytest.mark.parametrize("kind", ["upgrade", "rollback"])
def test_decide_undoes_an_uncommitted_switch_and_finishes_a_committed_one(kind):
    op = {"op": kind, "step": "prove", "release": "2.0", "from": "1.0"}
    assert journal.decide({"release": "1.0", "operation": op}).action == "undo-switch"
    assert journal.decide({"release": "2.0", "operation": dict(op, step="retire")}).action == "complete-switch"


def test_checkpoint_is_inert_unless_named(monkeypatch):
    monkeypatch.delenv(settings.KILL_ENV, raising=False)
    journal.checkpoint("upgrade", "prove")
    monkeypatch.setenv(settings.KILL_ENV, "upgrade:other")
    journal.checkpoint("upgrade", "prove")
    code = ("import os; os.environ['VISIONPACK_TEST_KILL_AT'] = 'upgrade:prove';"
            "from visionpack.installer import journal; journal.checkpoint('upgrade', 'prove'); print('alive')")
    package = str(Path(journal.__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": package})
    assert proc.returncode == -9 and "alive" not in proc.stdout


def test_sweep_orphans_removes_unknown_release_dirs(tmp_path):
    paths = Root(tmp_path).deploy("demo")
    for v in ("1.0", "2.0", "3.0"):
        (paths.release(v)).mkdir(parents=True)
    said = []
    gone = releases.sweep_orphans(paths, {"release": "2.0", "releases": {"2.0": {}, "1.0": {}}}, said.append)
    assert gone == ["3.0"] and sorted(p.name for p in paths.releases.iterdir()) == ["1.0", "2.0"] and said


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
    servers = [handover.serve(lambda i=i: ([listeners[i].fileno()], {"fds": ["listener"], "release": str(i)}),
                              handover.release_address(r)) for i, r in enumerate((one, two))]
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
