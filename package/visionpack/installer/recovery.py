"""Finish or undo what a killed installer left in state.json (decisions: journal.decide)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, cast

from . import journal
from .layout import DeployPaths
from .release import remove_tree

if TYPE_CHECKING:
    from .context import Context


def recover(paths: DeployPaths, state: dict[str, Any] | None, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Apply :func:`journal.decide`; returns the state afterwards (None = not installed)."""
    decision = journal.decide(state)
    if decision.action == "none":
        return state
    if state is None:  # decide() answers "none" for a missing journal; keeps type checkers honest
        return None
    say(f"recovery: {decision.reason}")
    op = decision.op or {}
    if decision.action == "undo-install":
        return undo_install(paths, state, op.get("release"), say)
    if decision.action == "complete-remove":
        delete_deploy(paths, purge=bool(op.get("purge")), say=say)
        return None
    if decision.action in ("undo-switch", "complete-switch"):
        return _switch(paths, state, decision.action, say)
    journal.clear(paths, state)
    _repoint_pidfile(paths, state)
    return state


def _switch(paths: DeployPaths, state: dict[str, Any], action: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Finish or undo an interrupted upgrade/rollback (switch.py does the work)."""
    from ..fsutil import atomic_symlink, atomic_write
    from . import procs, switch
    from .layout import Root

    # Duck-typed: _SayOnly holds what these switch calls read of a Context (no package source).
    ctx = cast("Context", _SayOnly(Root(paths.root.path), say))
    op = state["operation"]
    if action == "complete-switch":
        target, old = op["release"], op.get("from")
        if not procs.master(paths, version=target) and old and procs.master(paths, version=old):
            # The new master died after the commit while the old one still serves: going back
            # is the only way to end on one running release without a gap.
            say(f"release {target} is not running but {old} is; going back to {old}")
            state["release"] = old
            switch.undo(ctx, paths, state)
            return state
        if procs.master(paths, version=target):
            # Committed means proven: make sure its workers take the public socket.
            atomic_write(paths.public_flag(target), "recovered\n")
        atomic_symlink(f"releases/{target}", paths.current)
        if procs.master(paths, version=target):
            procs.point_pidfile(paths, target)
        switch.finish(ctx, paths, state, op["op"], {})
        return state
    switch.undo(ctx, paths, state)
    return state


class _SayOnly:
    """The slice of Context that recovery's switch calls use (no package source needed)."""

    def __init__(self, root: Any, say: Callable[[str], None]) -> None:
        self.root, self.say = root, say

    def warn(self, msg: str) -> None:
        self.say(f"warning: {msg}")


def _repoint_pidfile(paths: DeployPaths, state: dict[str, Any]) -> None:
    # A killed start may have left a running master whose pid file link was never made.
    from . import procs

    version = state.get("release")
    if version and procs.master(paths, version=version) and not procs.read_pid(paths.pidfile):
        procs.point_pidfile(paths, version)


def undo_install(
    paths: DeployPaths, state: dict[str, Any], version: str | None, say: Callable[[str], None]
) -> dict[str, Any] | None:
    committed = state.get("release")
    if version and version != committed:
        half = paths.release(version)
        if half.exists():
            remove_tree(half)
            say(f"removed half-made release {half}")
    if paths.current.is_symlink() and os.readlink(paths.current) != f"releases/{committed}":
        paths.current.unlink()
        say(f"removed {paths.current} (it pointed at the uncommitted release)")
    if not committed:
        # Nothing was ever installed: back to "not installed" (data/ and logs/ stay).
        remove_tree(paths.state)
        say(f"{paths.name} is not installed; data/ and logs/ kept")
        return None
    journal.clear(paths, state)
    return state


def delete_deploy(paths: DeployPaths, *, purge: bool, say: Callable[[str], None]) -> None:
    """Remove a deploy's files. state.json goes last so a crash mid-way is finished next run."""
    for path in (paths.current, paths.releases, paths.run):
        remove_tree(path)
    if purge:
        remove_tree(paths.data)
        remove_tree(paths.logs)
    remove_tree(paths.state)
    if purge:
        # The lock file goes with the directory; our open descriptor keeps the flock valid.
        remove_tree(paths.dir)
        say(f"removed {paths.dir}")
    else:
        say(f"removed {paths.name}; kept {paths.data} and {paths.logs}")
