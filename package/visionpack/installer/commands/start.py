"""start DEPLOY: license check, port check, start the deploy's runtime (runtimes/), wait for /ready."""

from __future__ import annotations

from typing import Any

from ...errors import PortInUse
from .. import binding, envcheck, filemodes, journal, venvs
from ..context import Context
from ..deployment import require
from ..installed import Installed
from ..licensecheck import check_license
from ..runtimes.kinds import runtime_for


def start(ctx: Context, deploy: str, *, timeout: float) -> dict[str, Any]:
    paths = ctx.root.deploy(deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        runtime = runtime_for(inst.state)
        pid = runtime.describe(paths, inst.state, probe=False)["pid"]
        if pid:
            ctx.say(f"{deploy} is already running (pid {pid})")
            # It may be an interrupted install's master, still booting: answer when it serves.
            runtime.await_serving(inst, pid, timeout)
            if inst.state.get("desired") != "running":
                inst.state["desired"] = "running"
                journal.save(paths, inst.state)
            return {"deploy": deploy, "pid": pid, "already_running": True}
        pid = start_installed(ctx, inst, timeout=timeout)
        return {"deploy": deploy, "pid": pid, "already_running": False}


def start_installed(ctx: Context, inst: Installed, *, timeout: float) -> int:
    """Start an installed, stopped deploy; the caller holds the deploy lock."""
    paths, state = inst.paths, inst.state
    runtime = runtime_for(state)
    # Ownership and modes first (the service user, a root an older installer wrote), so the
    # service can read its license and write its data whichever command started it.
    filemodes.secure(ctx.root, ctx.say)
    check_license(ctx.root.path, paths.name, state.get("service") or "", venvs.python_of(inst.venv))
    reason = envcheck.port_free(inst.host, inst.port)
    if reason:
        raise PortInUse(f"cannot bind {inst.host}:{inst.port} for {paths.name}: {reason}")
    runtime.check_release(inst)
    state["desired"] = "running"
    journal.begin(paths, state, "start", "spawn")
    try:
        pid = runtime.start(ctx, inst, timeout)
    finally:
        # Desired stays "running" on failure, so status reports "failed" until it is fixed.
        journal.clear(paths, state)
    binding.announce(
        ctx.say,
        ctx.warn,
        deploy=paths.name,
        service=state.get("service") or "",
        host=inst.host,
        port=inst.port,
        data_dir=paths.data,
        pid=pid,
    )
    return pid
