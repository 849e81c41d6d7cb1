"""stop DEPLOY: stop the deploy's runtime gracefully (SIGTERM, graceful_timeout, then SIGKILL)."""

from __future__ import annotations

from typing import Any

from .. import journal
from ..context import Context
from ..deployment import require
from ..installed import Installed
from ..runtimes.kinds import runtime_for


def stop(ctx: Context, deploy: str) -> dict[str, Any]:
    paths = ctx.root.deploy(deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        was_running = stop_installed(ctx, inst)
        return {"deploy": deploy, "was_running": was_running}


def stop_installed(ctx: Context, inst: Installed) -> bool:
    """Stop and record desired=stopped; the caller holds the deploy lock."""
    paths, state = inst.paths, inst.state
    state["desired"] = "stopped"
    journal.begin(paths, state, "stop", "signal")
    was_running = runtime_for(state).stop(ctx, inst)
    journal.clear(paths, state)
    ctx.say(f"{paths.name} stopped" if was_running else f"{paths.name} was not running")
    return was_running
