"""Ownership and modes of what the installer writes, and repair of what older installers wrote.

The policy (docs/operator-guide.md "Service user and file modes"):

* ``<DEPLOY>/data``, ``logs``, ``run``: the service user's (it writes them), directories 0750,
  files at most 0640: galleries, crops, logs with stack traces are nobody else's business.
* ``<ROOT>/licenses``: root's, group of the service user, setgid 2750, files 0640: the services
  read the license, never write it; a new license written by ``lu`` inherits the group at once
  (setgid), so a running service never meets a license it cannot read.
* ``/var/lib/visionpack/{instances,state}``: the service user's and its group's, 3770 (setgid,
  sticky), slot files 0660, clock marks 0640: anyone who can open a slot file can flock it and
  block a start, so nobody else may.
* Nothing world-writable anywhere under the root.

Every walk is made through directory descriptors without following symlinks (os.fwalk) and
every change through a descriptor opened with O_NOFOLLOW: the trees the service user owns are
its to change, and a link it planted there must never turn root's chown/chmod onto another file.
Applied at install, upgrade, rollback, lu and start; with a non-root installer the ownership
part is skipped (the services run as that user) and the modes still apply.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable, Optional

from . import serviceuser
from .layout import DeployPaths, Root

SHARED_STATE = Path("/var/lib/visionpack")
SHARED_SUBDIRS = {"instances": 0o660, "state": 0o640}  # directory -> mode of the files in it
SHARED_DIR_MODE = 0o3770
SERVICE_DIR_MODE = 0o750
LICENSES_DIR_MODE = 0o2750
LICENSE_FILE_MODE = 0o640

Ids = Optional[tuple[int, int]]


def private_mode(mode: int, is_dir: bool) -> int:
    """A file of a service tree: no write for the group, nothing for others (dirs keep u+rwx)."""
    perm = stat.S_IMODE(mode) & 0o750
    return perm | 0o700 if is_dir else perm


def _fix_fd(fd: int, st: os.stat_result, mode: int | None, owner: tuple[int, int] | None) -> None:
    # root:<service group> is a file the installer shares read-only on purpose (access.json,
    # serviceuser.share_with_service): left so. Anything else of root's in a service tree was
    # written by an older installer or a root-run service, and becomes the service user's.
    shared = owner is not None and st.st_uid == 0 and st.st_gid == owner[1] != 0
    if owner is not None and (st.st_uid, st.st_gid) != owner and not shared:
        os.fchown(fd, *owner)
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        os.fchmod(fd, mode)


def _open_entry(name: str, dir_fd: int) -> int | None:
    """A descriptor of a regular file or directory entry, never through a symlink; None to skip."""
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO, errno.EOPNOTSUPP):
            return None  # a symlink, gone meanwhile, a socket: nothing to fix through it
        raise


def walk_fix(
    top: Path, mode_of: Callable[[os.stat_result, bool], int | None], owner: tuple[int, int] | None = None
) -> None:
    """Apply ``mode_of(st, is_dir)`` (None: leave the mode) and ``owner`` to ``top`` and below."""
    if not top.is_dir() or top.is_symlink():
        return
    for _dirpath, _dirs, files, dir_fd in os.fwalk(top, follow_symlinks=False):
        st = os.fstat(dir_fd)
        _fix_fd(dir_fd, st, mode_of(st, True), owner)
        for name in files:
            fd = _open_entry(name, dir_fd)
            if fd is None:
                continue
            try:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    _fix_fd(fd, st, mode_of(st, False), owner)
            finally:
                os.close(fd)


def _no_world_write(st: os.stat_result, is_dir: bool) -> int | None:
    mode = stat.S_IMODE(st.st_mode)
    return mode & ~0o002 if mode & 0o002 else None


def service_dirs(paths: DeployPaths, ids: Ids, *, versions: tuple[str, ...] = ()) -> None:
    """data/, logs/, run/ (and run/<version>/) exist, belong to the service user, and are private."""
    for d in (paths.data, paths.logs, paths.run, *(paths.release_run(v) for v in versions)):
        d.mkdir(parents=True, exist_ok=True)
    for d in (paths.data, paths.logs, paths.run):
        walk_fix(d, lambda st, is_dir: private_mode(st.st_mode, is_dir), ids)


def secure_licenses(root: Root, ids: Ids) -> None:
    """root:<service group> 2750, files 0640; without a service user: the installer's own, same modes."""
    d = root.licenses
    if not d.is_dir():
        return
    owner = (0, ids[1]) if ids else None
    walk_fix(d, lambda st, is_dir: LICENSES_DIR_MODE if is_dir else LICENSE_FILE_MODE, owner)


def _shared_modes(file_mode: int) -> Callable[[os.stat_result, bool], int | None]:
    """A shared subdirectory's modes: SHARED_DIR_MODE for its directories, ``file_mode`` for its files."""
    return lambda _st, is_dir: SHARED_DIR_MODE if is_dir else file_mode


def prepare_shared_state(ids: Ids, base: Path = SHARED_STATE) -> None:
    """As root: the licensing directories, owned by the service user, nothing for others.

    Repairs what older installers made (1777 directories, 0666 slot files). A slot held by a
    running master keeps its lock: ownership and mode do not touch an open descriptor.
    Without root this is left to licensing, which makes the directories when it may.
    """
    if os.geteuid() != 0:
        return
    base.mkdir(parents=True, exist_ok=True)
    st = os.lstat(base)
    if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != 0o755:
        os.chmod(base, 0o755)  # root's; every service user passes through it to its subdirectory
    for sub, file_mode in SHARED_SUBDIRS.items():
        d = base / sub
        d.mkdir(exist_ok=True)
        walk_fix(d, _shared_modes(file_mode), ids)


def secure_root(root: Root, ids: Ids, *, deploys: list[str] | None = None) -> None:
    """The whole install root: nothing world-writable, licenses and each deploy's service trees."""
    if not root.path.is_dir():
        return
    walk_fix(root.path, _no_world_write)
    secure_licenses(root, ids)
    for name in root.deploy_names() if deploys is None else deploys:
        paths = root.deploy(name)
        if paths.dir.is_dir():
            service_dirs(paths, ids)


def secure(root: Root, say: Callable[[str], None] = print) -> Ids:
    """Everything above for one command (install, upgrade, rollback, lu, start); returns the ids."""
    ids = serviceuser.ensure(say)
    prepare_shared_state(ids)
    secure_root(root, ids)
    return ids


def open_console_log(path: Path, ids: Ids) -> int:
    """gunicorn.out for appending, 0640, the service user's; never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        _fix_fd(fd, st, private_mode(st.st_mode, False), ids)
    except BaseException:
        os.close(fd)
        raise
    return fd
