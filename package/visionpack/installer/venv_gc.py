"""Garbage collection of runtime venvs no kept release uses any more.

Runtimes are shared per lock file across every deploy of a root (``.runtime/<key>``), so one can
only go when no release of any deploy points at it. Each package upgrade with a new lock adds a
~1.5 GB venv; without this, ``keep N`` pruned releases but never their runtimes.

Safety rules, in order of importance:
- Unsure means keep: if any release directory of the root has no readable ``release.json``, we
  cannot know what it needs, and nothing is removed.
- A runtime used in the last ``GRACE_S`` seconds is kept: ``venvs.ensure`` touches the venv
  it returns, and an install that has ensured a venv but not yet written its ``release.json``
  must not lose it to a concurrent upgrade of another deploy.
- A ``.runtime`` that is a symlink is shared with other roots and never collected.
- Removal happens under the root-wide runtime lock (the one builds take), by renaming the venv to
  ``.gc-<key>-<pid>`` first: a kill mid-way leaves a name nothing resolves, swept at the next GC.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from ..fsutil import fsync_dir
from .layout import Root
from .release import read_info

GC_PREFIX = ".gc-"
GRACE_S = 3600.0


def referenced(root: Root) -> set[Path] | None:
    """Runtime paths used by the root's releases, or None when some release cannot be read."""
    used: set[Path] = set()
    for name in root.deploy_names():
        releases = root.deploy(name).releases
        if not releases.is_dir():
            continue
        for release in releases.iterdir():
            if release.name.startswith(".") or not release.is_dir():
                continue  # staging directories of an install in progress are covered by GRACE_S
            info = read_info(release)
            runtime = info.get("runtime")
            if not runtime:
                return None
            used.add(Path(runtime).resolve())
    return used


def collect(
    root: Root, *, now: float | None = None, grace_s: float = GRACE_S, say: Callable[[str], None] = print
) -> list[str]:
    """Remove unreferenced runtimes; returns the keys removed."""
    base = root.venv_base
    if not base.is_dir() or base.is_symlink():
        # A linked .runtime is shared with other roots whose releases we cannot see from here.
        return []
    now = time.time() if now is None else now
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for stale in base.glob(GC_PREFIX + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        used = referenced(root)
        if used is None:
            say("runtime cleanup skipped: a release without a readable release.json")
            return []
        removed = []
        for venv in sorted(base.iterdir()):
            if venv.name.startswith(".") or not venv.is_dir() or venv.resolve() in used:
                continue
            if now - venv.stat().st_mtime < grace_s:
                continue
            doomed = base / f"{GC_PREFIX}{venv.name}-{os.getpid()}"
            os.rename(venv, doomed)
            fsync_dir(base)
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(venv.name)
            say(f"removed runtime {venv.name}: no kept release uses it")
        return removed
    finally:
        os.close(fd)


def collect_safely(root: Root, say: Callable[[str], None] = print) -> list[str]:
    """``collect`` for the end of upgrade/rollback/remove: a cleanup failure never fails them."""
    try:
        return collect(root, say=say)
    except OSError as exc:
        say(f"warning: runtime cleanup failed ({exc}); the next upgrade or remove retries it")
        return []
