"""The system user the services run as when the installer runs as root.

One user for both runtimes: the Docker image runs as uid:gid 10001:10001 ("visionpack",
tools/image/image.py), so a root install creates the same name and numbers on the host where
they are free. Then files the services write (data/, logs/, run/, the license slots) belong to
the same uid whichever runtime wrote them, and a deploy can switch runtimes without a chown.

A non-root operator installs into a root they own; the services then run as that operator and
nothing here applies (``lookup`` answers None).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

from ..errors import EnvironmentCheckFailed

NAME = "visionpack"
UID = GID = 10001  # the Docker image's user and group (tools/image/image.py, runtimes/docker_containers.UID)
_NOLOGIN = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")


def is_root() -> bool:
    return os.geteuid() == 0


def lookup() -> tuple[int, int] | None:
    """(uid, gid) the services run as, or None when they run as the invoking user.

    None when not root (a non-root installer cannot switch users) or when the user does not
    exist yet (``ensure`` creates it at install).
    """
    if not is_root():
        return None
    try:
        pw = pwd.getpwnam(NAME)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def _free_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def _free_gid(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return True
    return False


def _run(cmd: list[str]) -> None:
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentCheckFailed(f"cannot create the service user {NAME!r}: {' '.join(cmd)}: {exc}") from None
    if done.returncode != 0:
        raise EnvironmentCheckFailed(
            f"cannot create the service user {NAME!r}: {' '.join(cmd)} exited {done.returncode}: "
            f"{(done.stderr or done.stdout).strip()[-500:]}"
        )


def ensure(say: Callable[[str], None] = print) -> tuple[int, int] | None:
    """As root, create the system user once (no login shell, no home); return its (uid, gid).

    uid/gid 10001 as in the Docker image when those numbers are free on this host, else the
    system picks. Not root: None, nothing is created.
    """
    if not is_root():
        return None
    ids = lookup()
    if ids is not None:
        return ids
    if shutil.which("useradd") is None or shutil.which("groupadd") is None:
        raise EnvironmentCheckFailed(
            f"cannot create the service user {NAME!r}: useradd/groupadd not found; create a system "
            f"user {NAME!r} (no login shell) by hand, then run install again"
        )
    shell = next((s for s in _NOLOGIN if Path(s).exists()), "/bin/false")
    try:
        grp.getgrnam(NAME)
    except KeyError:
        _run(["groupadd", "--system", *(["--gid", str(GID)] if _free_gid(GID) else []), NAME])
    _run(
        [
            "useradd",
            "--system",
            *(["--uid", str(UID)] if _free_uid(UID) else []),
            "--gid",
            NAME,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            shell,
            "--comment",
            "visionpack services",
            NAME,
        ]
    )
    ids = lookup()
    if ids is None:  # useradd said yes but NSS does not see it (e.g. an LDAP-only nsswitch)
        raise EnvironmentCheckFailed(
            f"created the service user {NAME!r} but cannot look it up; check /etc/nsswitch.conf"
        )
    say(f"created system user {NAME!r} (uid {ids[0]}, gid {ids[1]}); the services run as it")
    return ids


def chown_for_service(path: os.PathLike[str] | str) -> None:
    """When root and the service user exists, make ``path`` owned by it (uid and gid)."""
    ids = lookup()
    if ids is not None:
        os.chown(path, ids[0], ids[1], follow_symlinks=False)


def share_with_service(path: os.PathLike[str] | str) -> None:
    """When root and the service user exists, give ``path`` to root:<service group>.

    For files the service must read but never write (the license, config): with mode 0640
    the service reads through its group, only root changes them.
    """
    ids = lookup()
    if ids is not None:
        os.chown(path, 0, ids[1], follow_symlinks=False)


def name_of(ids: tuple[int, int] | None) -> str:
    """Who the services run as, for messages."""
    if ids is None:
        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            return f"uid {os.geteuid()}"
    return f"{NAME} (uid {ids[0]})"


def popen_kwargs(ids: tuple[int, int] | None) -> dict[str, Any]:
    """subprocess.Popen arguments that start a child as the service user (nothing when None).

    Only the user's own group: the root installer's supplementary groups must not leak into
    the service (Popen's user=/group=/extra_groups=, Python 3.9 and later: install.py's minimum).
    """
    if ids is None:
        return {}
    uid, gid = ids
    return {"user": uid, "group": gid, "extra_groups": []}


def _may(st: os.stat_result, uid: int | None, gids: Sequence[int], bits: int) -> bool:
    """Mode-bit permission check for ``bits`` (4 r, 2 w, 1 x) as ``uid``/``gids`` (ACLs ignored)."""
    if uid == 0:
        return True
    if uid is not None and st.st_uid == uid:
        return (st.st_mode >> 6) & bits == bits
    if st.st_gid in gids:
        return (st.st_mode >> 3) & bits == bits
    return st.st_mode & bits == bits


def blocked(path: os.PathLike[str] | str, ids: tuple[int, int] | None, *, need: int = 4) -> Path | None:
    """The first directory (or the file itself) the service user cannot pass to reach ``path``.

    ``ids`` None means a user who does not exist yet: only "other" permission bits count.
    Each directory needs x; the target needs ``need`` (4 read, 5 read+execute). Symlinks
    are followed the way the kernel would. A path that does not exist is checked up to its
    nearest existing ancestor (what will be created there is made traversable).
    """
    uid, gids = (ids[0], (ids[1],)) if ids else (None, ())
    target = Path(os.path.realpath(path))
    existing = target
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    for parent in reversed(existing.parents):
        if not _may(os.stat(parent), uid, gids, 1):
            return parent
    if existing != target:
        return None if _may(os.stat(existing), uid, gids, 1) else existing
    bits = 1 if target.is_dir() else need
    return None if _may(os.stat(target), uid, gids, bits) else target


def explain(path: os.PathLike[str] | str, where: Path, ids: tuple[int, int] | None) -> str:
    """A sentence saying why the service user cannot reach ``path`` and what to do."""
    try:
        mode = f"{stat.S_IMODE(os.stat(where).st_mode):04o}"
    except OSError:
        mode = "?"
    return (
        f"the service user {name_of(ids) if ids else NAME} cannot reach {path}: {where} is mode {mode} "
        f"(owner uid {_owner(where)}); make it traversable ('chmod o+x {where}') or install under a "
        f"directory every user can enter (e.g. /opt/visionpack)"
    )


def _owner(path: Path) -> str:
    try:
        return str(os.stat(path).st_uid)
    except OSError:
        return "?"


def first_blocked(paths: Iterable[os.PathLike[str] | str], ids: tuple[int, int] | None) -> str | None:
    """``explain`` for the first of ``paths`` the service user cannot reach, or None."""
    for p in paths:
        where = blocked(p, ids, need=5 if os.access(p, os.X_OK) and not os.path.isdir(p) else 4)
        if where is not None:
            return explain(p, where, ids)
    return None
