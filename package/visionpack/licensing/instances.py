"""Machine-wide instance limit: one flock()ed slot file per running service instance.

Each service master (a gunicorn master, or a container's entry process) holds one
``slot-N.lock`` in ``INSTANCES_DIR`` with ``fcntl.flock`` for its whole life. The kernel
drops the lock when the last descriptor closes, so a crashed or SIGKILLed service frees
its slot with no cleanup and no stale pid files. Workers forked by the master inherit the
descriptor, which keeps the slot held until the whole process tree is gone.

The directory is fixed on purpose and is shared by every deploy on the machine: a
configurable directory would let each deploy count only itself. ``directory=`` exists
for unit tests and must never be wired to a flag, environment variable or config key.
Slot files are never deleted: unlinking a lock file races with another process opening
it, which would let two holders believe they own the same slot.

Who may take a slot: the directory belongs to the service user (``visionpack``, made by
the root installer, installer/filemodes.py) and its group, mode 3770 (setgid, sticky, no
access for others), slot files 0660. A flock needs only a descriptor, and any user who can
open a slot file can hold it and block a start; so only the service user and members of its
group (a container's uid 10001, a non-root operator added to the group) can open one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LicenseError

INSTANCES_DIR = Path("/var/lib/visionpack/instances")
_SLOT = re.compile(r"slot-(\d{1,6})\.lock")
_MUTEX = ".acquire.lock"
_MUTEX_WAIT = 10.0
SLOT_MODE = 0o660  # see _open_slot
DIR_MODE = 0o3770  # setgid + sticky, owner and group only: see _prepare


@dataclass
class Slot:
    """A held instance slot; :meth:`release` (or process exit) frees it."""

    index: int
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)  # no stale owner info for diagnostics to misread
            except OSError:
                pass
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = -1

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Mutex:
    """Serialises acquire/count so probing a free slot never collides with taking it."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / _MUTEX

    def __enter__(self) -> _Mutex:
        self.fd = _open_slot(self.path)
        deadline = time.monotonic() + _MUTEX_WAIT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES) or time.monotonic() > deadline:
                    os.close(self.fd)
                    raise LicenseError("instance-limit", f"cannot lock {self.path}: {exc}") from None
                time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _slot_indices(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_SLOT.fullmatch, names) if m)


def _open_slot(path: Path) -> int:
    # Other service users share the directory, so never follow a planted symlink, and
    # refuse anything that is not a plain file of our own making (a hard link to /etc/passwd).
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, SLOT_MODE)
        except PermissionError:
            # Another user's slot file that we may not write: flock works on a read-only
            # descriptor too; only the owner info cannot be written.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:  # ELOOP for a planted symlink, EACCES, ENOSPC ...
        hint = (
            ('; services run as the user visionpack or a member of its group (docs/licensing.md "Instances")')
            if exc.errno in (errno.EACCES, errno.EPERM)
            else ""
        )
        raise LicenseError("instance-limit", f"cannot open slot file {path}: {exc.strerror}{hint}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise LicenseError("instance-limit", f"{path} is not a plain slot file; remove it")
    _give_to_directory_owner(fd, st, path.parent)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != SLOT_MODE:
        # Group-writable, so whoever of the service group holds the slot can label it
        # (holders()). The count is the flock; the sticky directory keeps group members from
        # replacing each other's files; others cannot open them at all.
        try:
            os.fchmod(fd, SLOT_MODE)
        except OSError:
            pass
    return fd


def _give_to_directory_owner(fd: int, st: os.stat_result, directory: Path) -> None:
    """Root (the installer's license check, status) creating a file in the service user's
    directory hands it to that user, so the services can label it later."""
    if os.geteuid() != 0 or st.st_uid != 0:
        return
    try:
        owner = os.stat(directory)
        if owner.st_uid != 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
    except OSError:
        pass


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s lock, or None if someone else holds it."""
    fd = _open_slot(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes()[:4096] or b"{}")
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _scan(directory: Path) -> tuple[list[int], list[int]]:
    """(held, free) slot indices among existing files. Call under the mutex."""
    held, free = [], []
    for idx in _slot_indices(directory):
        fd = _try_lock(directory / f"slot-{idx}.lock")
        if fd is None:
            held.append(idx)
        else:
            os.close(fd)
            free.append(idx)
    return held, free


def _prepare(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Normally made by the root installer for the service user (filemodes.prepare_shared_state);
        # made here only where the services' user may create it (unit tests, a writable /var/lib).
        # Never world-writable: anyone who may create a slot file may also hold it.
        os.chmod(directory, DIR_MODE)
    except OSError as exc:
        raise LicenseError(
            "instance-limit",
            f"cannot create the instance directory {directory} ({exc.strerror}); "
            f"run the installer once as root to create it",
        ) from None


def acquire(limit: int, owner_info: Mapping[str, Any], directory: Path = INSTANCES_DIR) -> Slot:
    """Take a slot if fewer than ``limit`` are held machine-wide, else LicenseError('instance-limit').

    ``owner_info`` (e.g. deploy, service, port) is written into the slot for ``holders()``.
    """
    directory = Path(directory)
    _prepare(directory)
    with _Mutex(directory):
        held, _ = _scan(directory)
        # Count every held slot, not just 0..limit-1: instances started under an older,
        # larger license still run and still count against a smaller new one.
        if len(held) >= limit:
            who = ", ".join(
                f"{o.get('deploy', '?')}/{o.get('service', '?')} pid {o.get('pid', '?')}"
                for o in (_read_owner(directory / f"slot-{i}.lock") for i in held)
            )
            raise LicenseError(
                "instance-limit",
                f"{len(held)} of {limit} licensed instances already run on this "
                f"machine ({who}); stop one or get a license with more instances",
            )
        taken = set(held)
        idx = next(i for i in range(len(taken) + 1) if i not in taken)  # lowest free number
        path = directory / f"slot-{idx}.lock"
        fd = _try_lock(path)
        if fd is None:  # impossible under the mutex unless someone ignores it; refuse rather than overcount
            raise LicenseError("instance-limit", f"{path} was taken concurrently; retry")
    info = {"pid": os.getpid(), "since": int(time.time()), **dict(owner_info)}
    data = json.dumps(info, sort_keys=True, default=str).encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # read-only descriptor (another user's file): the slot counts, its label is stale
    return Slot(index=idx, path=path, fd=fd)


def holders(directory: Path = INSTANCES_DIR) -> list[dict[str, Any]]:
    """Owner info of every held slot (for status and trouble_shooting)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    with _Mutex(directory):
        held, _ = _scan(directory)
    return [{"slot": i, **_read_owner(directory / f"slot-{i}.lock")} for i in held]


def count(directory: Path = INSTANCES_DIR) -> int:
    """Number of running instances on this machine."""
    return len(holders(directory))
