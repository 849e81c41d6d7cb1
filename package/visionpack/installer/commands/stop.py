"""stop DEPLOY: SIGTERM the verified master, wait graceful_timeout, then SIGKILL."""

from __future__ import annotations

from .. import docker_install, journal, procs
from ..context import Context
from ..deployment import Installed, require


def stop(ctx: Context, deploy: str) -> dict:
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
    if docker_install.is_docker(state):
        was_running = docker_install.stop_installed(ctx, inst)
    else:
        was_running = procs.stop(paths, inst.graceful_timeout(), say=ctx.say)
    journal.clear(paths, state)
    ctx.say(f"{paths.name} stopped" if was_running else f"{paths.name} was not running")
    return was_running
