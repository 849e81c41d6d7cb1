"""start DEPLOY: license check, port check, spawn gunicorn, wait for /ready."""

from __future__ import annotations

from ...errors import PortInUse, StartFailed
from .. import binding, docker_install, envcheck, filemodes, journal, procs, venvs
from ..context import Context
from ..deployment import Installed, require
from ..licensecheck import check_license


def start(ctx: Context, deploy: str, *, timeout: float) -> dict:
    paths = ctx.root.deploy(deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        if docker_install.is_docker(inst.state):
            pid = docker_install.describe(paths, inst.state, probe=False)["pid"]
        else:
            pid = procs.master(paths)
        if pid:
            ctx.say(f"{deploy} is already running (pid {pid})")
            if not docker_install.is_docker(inst.state):
                # It may be an interrupted install's master, still booting: answer when it serves.
                procs.await_running(paths, pid, inst.host, inst.port, timeout)
            if inst.state.get("desired") != "running":
                inst.state["desired"] = "running"
                journal.save(paths, inst.state)
            return {"deploy": deploy, "pid": pid, "already_running": True}
        pid = start_installed(ctx, inst, timeout=timeout)
        return {"deploy": deploy, "pid": pid, "already_running": False}


def start_installed(ctx: Context, inst: Installed, *, timeout: float) -> int:
    """Start an installed, stopped deploy; the caller holds the deploy lock."""
    paths, state = inst.paths, inst.state
    # Ownership and modes first (the service user, a root an older installer wrote), so the
    # service can read its license and write its data whichever command started it.
    filemodes.secure(ctx.root, ctx.say)
    check_license(ctx.root.path, paths.name, state.get("service") or "", venvs.python_of(inst.runtime))
    reason = envcheck.port_free(inst.host, inst.port)
    if reason:
        raise PortInUse(f"cannot bind {inst.host}:{inst.port} for {paths.name}: {reason}")
    if not docker_install.is_docker(state) and not (inst.runtime / "bin" / "gunicorn").exists():
        raise StartFailed(f"runtime {inst.runtime} of release {inst.version} is missing; re-install the deploy")
    state["desired"] = "running"
    journal.begin(paths, state, "start", "spawn")
    try:
        if docker_install.is_docker(state):
            pid = docker_install.start_installed(ctx, inst, timeout=timeout)
        else:
            pid = procs.start(paths, inst.runtime, inst.release, inst.host, inst.port, timeout=timeout, say=ctx.say)
    finally:
        # Desired stays "running" on failure, so status reports "failed" until it is fixed.
        journal.clear(paths, state)
    binding.announce(ctx.say, ctx.warn, deploy=paths.name, service=state.get("service") or "", host=inst.host,
                     port=inst.port, data_dir=paths.data, pid=pid)
    return pid
