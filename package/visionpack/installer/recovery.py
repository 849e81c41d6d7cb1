"""Finish or undo what a killed installer left in state.json (decisions: journal.decide)."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from . import journal
from .layout import DeployPaths
from .release import remove_tree


def recover(paths: DeployPaths, state: Optional[dict[str, Any]], say: Callable[[str], None]) -> Optional[dict[str, Any]]:
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
    journal.clear(paths, state)
    return state


def undo_install(paths: DeployPaths, state: dict[str, Any], version: Optional[str],
                 say: Callable[[str], None]) -> Optional[dict[str, Any]]:
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
