"""Reading one installed deploy: its journal (recovered first when asked) and its status."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import NotInstalled
from . import journal, recovery
from .context import Context
from .installed import Installed
from .layout import DeployPaths
from .runtimes.kinds import runtime_for


def require(ctx: Context, deploy: str, *, recover: bool = False, say: Callable[[str], None] | None = None) -> Installed:
    """The installed deploy or NotInstalled; ``recover`` (only under the lock) repairs first."""
    paths = ctx.root.deploy(deploy)
    state = journal.load(paths)
    if recover:
        state = recovery.recover(paths, state, say or ctx.say)
    if not state or not state.get("release"):
        raise NotInstalled(f"{deploy!r} is not installed under {ctx.root.path}")
    return Installed(paths, state)


def describe(paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
    """One deploy's status as a JSON-able dict (the shape of ``status --json``), from its runtime."""
    return runtime_for(state).describe(paths, state, probe=probe)
