"""Machine-wide instance slots: flock()ed files the kernel frees when a holder dies, held by separate
processes, in the real machine-wide directory and by other users."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import PACKAGE
from visionpack.errors import LicenseError
from visionpack.licensing import instances

HOLDER = """
import sys, time
sys.path.insert(0, {pkg!r})
from pathlib import Path
from visionpack.licensing import instances
slot = instances.acquire({limit}, {{"deploy": "d{n}", "service": "classification"}}, directory=Path({dir!r}))
print(slot.index, flush=True)
time.sleep(60)
"""


def spawn_holder(directory: Path, n: int, limit: int = 10) -> subprocess.Popen:
    code = HOLDER.format(pkg=str(PACKAGE), limit=limit, n=n, dir=str(directory))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    assert line.strip().isdigit(), proc.stderr.read()
    return proc


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def test_killed_process_frees_its_slot(tmp_path, procs):
    procs.append(spawn_holder(tmp_path, 1))
    procs.append(spawn_holder(tmp_path, 2))
    assert instances.count(tmp_path) == 2
    assert {h["deploy"] for h in instances.holders(tmp_path)} == {"d1", "d2"}
    with pytest.raises(LicenseError):
        instances.acquire(2, {"deploy": "me"}, directory=tmp_path)
    procs[0].send_signal(signal.SIGKILL)  # no cleanup code runs: the kernel drops the lock
    procs[0].wait(timeout=10)
    slot = instances.acquire(2, {"deploy": "me"}, directory=tmp_path)
    assert slot.index == 0 and instances.count(tmp_path) == 2
    slot.release()


def test_concurrent_starters_never_exceed_limit(tmp_path, procs):
    for n in range(4):
        code = HOLDER.format(pkg=str(PACKAGE), limit=2, n=n, dir=str(tmp_path))
        procs.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    deadline = time.monotonic() + 30
    while sum(p.poll() is not None for p in procs) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    refused = [p for p in procs if p.poll() is not None]
    assert len(refused) == 2
    for p in refused:
        assert b"instance-limit" in p.stderr.read() or p.returncode != 0
    assert instances.count(tmp_path) == 2


def test_machine_wide_directory(procs):
    """The real fixed directory: a slot shows up in count() and disappears when released."""
    assert instances.INSTANCES_DIR == Path("/var/lib/visionpack/instances")
    before = {h["pid"] for h in instances.holders()}
    slot = instances.acquire(10_000, {"deploy": "unit-test", "service": "none"})
    try:
        assert os.getpid() in {h["pid"] for h in instances.holders()}
        assert slot.path.parent == instances.INSTANCES_DIR
    finally:
        slot.release()
    assert slot.path.read_bytes() == b""  # released: the empty slot file stays, no owner info
    assert os.getpid() not in {h["pid"] for h in instances.holders()} - before


_AS_USER = (
    # Everything imported before dropping privileges: the other uid may not read this python's stdlib.
    "import os, sys, json, fcntl; sys.path.insert(0, {package!r})\n"
    "from pathlib import Path\nfrom visionpack.errors import LicenseError\nfrom visionpack.licensing import instances\n"
    "os.setgroups([]); os.setgid({gid}); os.setuid({uid})\n"
)


def _as_user(uid: int, gid: int, body: str) -> subprocess.CompletedProcess:
    code = _AS_USER.format(package=str(PACKAGE), uid=uid, gid=gid) + body
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.fixture
def service_slots():
    """A slot directory as the root installer makes it: uid:gid 10001 (the service user), 3770.

    Not under pytest's 0700 base, so other uids can reach it.
    """
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.fail("the tests run as root (CI and the dev machines do): other uids need it")
    base = Path(tempfile.mkdtemp(prefix="vp-slots-"))
    base.chmod(0o755)
    directory = base / "instances"
    directory.mkdir()
    os.chown(directory, 10001, 10001)
    directory.chmod(instances.DIR_MODE)
    yield directory
    shutil.rmtree(base, ignore_errors=True)


def test_root_made_slot_files_go_to_the_service_user_who_labels_them(service_slots):
    """The installer (root) counting slots creates files the service user later holds and labels:
    they are handed to the directory's owner, 0660."""
    with instances.acquire(1, {"deploy": "first"}, directory=service_slots):
        pass
    for name in ("slot-0.lock", ".acquire.lock"):
        st = (service_slots / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (10001, 10001, instances.SLOT_MODE), name
    # A container's master (uid:gid 10001, the same user) takes the slot and labels it.
    proc = _as_user(
        10001,
        10001,
        f"s = instances.acquire(1, {{'deploy': 'container'}}, directory=Path({str(service_slots)!r}))\n"
        f"print(json.dumps(instances.holders(Path({str(service_slots)!r}))))\n",
    )
    assert proc.returncode == 0, proc.stderr
    (holder,) = json.loads(proc.stdout)
    assert (holder["slot"], holder["deploy"]) == (0, "container")


def test_a_local_user_outside_the_service_group_cannot_hold_or_block_a_slot(service_slots):
    """Before, 1777 + 0666 let any local user flock a free slot file and make every start refuse."""
    with instances.acquire(4, {"deploy": "a"}, directory=service_slots):
        pass  # slot-0.lock and the mutex exist now, free
    probe = (
        f"d = Path({str(service_slots)!r})\n"
        "out = {}\n"
        "for name in ('slot-0.lock', '.acquire.lock', 'slot-1.lock'):\n"
        "    try:\n"
        "        fd = os.open(d / name, os.O_RDONLY | os.O_CREAT, 0o644)\n"
        "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        out[name] = 'locked'\n"
        "    except OSError as exc:\n"
        "        out[name] = exc.strerror\n"
        "try:\n"
        "    instances.acquire(4, {'deploy': 'stranger'}, directory=d)\n"
        "    out['acquire'] = 'taken'\n"
        "except LicenseError as exc:\n"
        "    out['acquire'] = exc.detail\n"
        "print(json.dumps(out))\n"
    )
    proc = _as_user(10002, 10002, probe)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["slot-0.lock"] == out[".acquire.lock"] == out["slot-1.lock"] == "Permission denied", out
    assert "Permission denied" in out["acquire"] and "group" in out["acquire"], out
    assert sorted(os.listdir(service_slots)) == [".acquire.lock", "slot-0.lock"]  # it created nothing
    with instances.acquire(1, {"deploy": "b"}, directory=service_slots) as slot:  # and blocked nothing
        assert slot.index == 0
