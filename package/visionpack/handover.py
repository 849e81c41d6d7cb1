"""Zero-downtime switch between releases: hand the listening socket from one master to the next.

Every gunicorn master of a release (start/gunicorn_conf.py) serves, on the Linux abstract
unix socket ``@visionpack-handover-<master pid>``, copies of its listening sockets and of its
license instance slot (SCM_RIGHTS). ``install.py upgrade``/``rollback`` fetch them and start
the next release's master on the *same* listening socket (systemd's LISTEN_FDS protocol,
which gunicorn honours). Old and new workers then accept from one kernel queue: when the old
master stops, the socket stays open in the new one, so no queued connection is ever reset
(two SO_REUSEPORT sockets would reset the closing one's queue; docs/releases.md).

The new master's workers do not accept on that public socket until the installer has proved
the release healthy through a private loopback probe socket and written the release's
``serve-public`` flag (:func:`hold_public`, a worker hook).

Only processes of the master's own user (or root) are answered (SO_PEERCRED).

Shared by both sides, so it lives outside the installer package: the service's gunicorn config
(start/gunicorn_conf.py) serves and adopts, the installer (installer/runtimes/) fetches and binds.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import SLOT_FD_ENV, STANDBY_FLAG_ENV

PREFIX = "visionpack-handover-"
MAX_FDS = 16
FLAG_POLL = 0.05  # how often a held-back worker looks for the serve-public flag
ENV_FLAG = STANDBY_FLAG_ENV  # path of the serve-public flag (workers read it; config.standby_flag)
ENV_SLOT_FD = SLOT_FD_ENV  # license slot fd handed over by the old master (config.take_inherited_slot_fd)


def address(pid: int) -> str:
    # Abstract namespace: no path-length limit, nothing left on disk after a kill -9.
    return "\0" + PREFIX + str(pid)


def release_address(release: str) -> str:
    """The address of a container's master, named by its release directory instead of its pid.

    Containers share the host's network namespace, hence its abstract unix sockets, but every
    container's master is pid 1: the pid would collide. The release path (config.yml's
    ``release``) names one deploy of one install root at one version, and a deploy never runs
    two masters of the same release. Hashed to keep the name short whatever the root's path.
    """
    digest = hashlib.sha256(os.path.normpath(release).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return "\0" + PREFIX + "r-" + digest


# Written by install.py into a container's run directory before it starts a standby release
# (docker upgrade/rollback); read and deleted by that container's master (start/gunicorn_conf.py),
# which cannot inherit descriptors from install.py and so fetches the socket itself.
STANDBY_REQUEST = "handover-request.json"
STANDBY_ANSWER = "standby.json"  # the standby master's answer: its private probe port


# --- master side (runs inside gunicorn, started from when_ready) ------------------------------


def serve(get_fds: Callable[[], tuple[list[int], dict[str, Any]]], addr: str | None = None) -> socket.socket:
    """Answer every connection with ``get_fds()``'s descriptors and JSON header, in a thread.

    ``addr``: where to listen (default :func:`address` of this pid).
    """
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(addr or address(os.getpid()))
    srv.listen(4)

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return  # closed: the master is stopping
            try:
                _answer(conn, get_fds)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=loop, name="visionpack-handover", daemon=True).start()
    return srv


def _answer(conn: socket.socket, get_fds: Callable[[], tuple[list[int], dict[str, Any]]]) -> None:
    conn.settimeout(5)
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid not in (0, os.getuid()):
        return  # listening sockets and the license slot are only for our own installer
    fds, header = get_fds()
    data = json.dumps(header).encode()
    conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else [])


# --- installer side ---------------------------------------------------------------------------


@dataclass
class Handed:
    """What an old master handed over; close() what is not passed on."""

    info: dict[str, Any]
    listeners: list[socket.socket] = field(default_factory=list)
    slot_fd: int | None = None

    def public(self, port: int) -> socket.socket | None:
        for s in self.listeners:
            if s.getsockname()[1] == port:
                return s
        return None

    def close(self) -> None:
        for s in self.listeners:
            s.close()
        self.listeners = []
        if self.slot_fd is not None:
            os.close(self.slot_fd)
            self.slot_fd = None


def fetch(pid: int | None, timeout: float = 5.0, *, addr: str | None = None) -> Handed:
    """Copies of master ``pid``'s (or the master at ``addr``'s) listening sockets and license slot.

    OSError if it does not answer.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr or address(int(pid or 0)))
        msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4))
    fds: list[int] = []
    for level, ctype, data in anc:
        if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(data[: len(data) - len(data) % arr.itemsize])
            fds.extend(arr)
    if not msg:
        for fd in fds:
            os.close(fd)
        raise ConnectionError(f"master {pid or addr!r} refused the handover")
    info = json.loads(msg)
    kinds = info.get("fds") or []
    handed = Handed(info)
    for i, fd in enumerate(fds):
        kind = kinds[i] if i < len(kinds) else "unknown"
        if kind == "listener":
            handed.listeners.append(socket.socket(fileno=fd))
        elif kind == "slot" and handed.slot_fd is None:
            handed.slot_fd = fd
        else:
            os.close(fd)
    return handed


def bind_probe(host: str = "127.0.0.1", backlog: int = 64) -> socket.socket:
    """A private loopback listener on a free port: reaches only the new release's workers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(backlog)
    return s


def bind_public(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The public listener when no master runs to hand one over (gunicorn's own options)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


# --- worker side (post_worker_init hook) ----------------------------------------------------


def hold_public(worker: Any, public_port: int, flag: str | None) -> bool:
    """Keep a standby worker off the public socket until ``flag`` exists; True if held back.

    Relies on our HTTP front worker (visionpack.api.front, the only class we configure): the
    public listener is taken out of its ``sockets`` before its loop starts, and handed back with
    its thread-safe ``add_listener`` once the flag appears.
    """
    if not flag or os.path.exists(flag) or not hasattr(worker, "add_listener"):
        return False
    public = [s for s in worker.sockets if _port(s) == public_port]
    if not public:
        return False
    worker.sockets = [s for s in worker.sockets if s not in public]

    def watch() -> None:
        while worker.alive:
            if os.path.exists(flag):
                for s in public:
                    worker.add_listener(s)
                return
            time.sleep(FLAG_POLL)

    threading.Thread(target=watch, name="visionpack-standby", daemon=True).start()
    return True


def _port(listener: Any) -> int | None:
    try:
        name = listener.getsockname()
    except OSError:
        return None
    return name[1] if isinstance(name, tuple) else None


# --- master side: the license slot handed over by the old master ----------------------------


def adopt_slot(fd: int, owner_info: dict[str, Any]) -> Any:
    """Take over the old master's instance slot (same open file, same flock) instead of a new one.

    The slot counts once while both masters run, so a 1-instance license can be upgraded. The
    descriptor must be a slot file of the machine-wide directory that this process now holds.
    """
    import fcntl
    import re

    from .errors import LicenseError
    from .licensing import instances

    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        match = re.fullmatch(r"slot-(\d{1,6})\.lock", os.path.basename(target))
        # The same file as the slot of that name in the machine-wide directory. Compared by
        # inode, not by the link's path: a descriptor opened in a container that is gone since
        # (handed on from container to container) reads as relative to its bind mount.
        named = os.stat(instances.INSTANCES_DIR / match.group(0)) if match else None
        st = os.fstat(fd)
        if match is None or named is None or (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
            raise LicenseError("instance-limit", f"handed-over descriptor {fd} is not an instance slot ({target})")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours through the shared open file
    except OSError as exc:
        raise LicenseError("instance-limit", f"cannot take over the instance slot (fd {fd}): {exc}") from None
    data = json.dumps({"pid": os.getpid(), "since": int(time.time()), **owner_info}, sort_keys=True, default=str)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data.encode(), 0)
    except OSError:
        pass  # another user's slot file: it still counts, only its label is stale
    return instances.Slot(index=int(match.group(1)), path=instances.INSTANCES_DIR / match.group(0), fd=fd)
