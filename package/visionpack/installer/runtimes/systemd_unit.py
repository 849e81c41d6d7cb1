"""The systemd runtime: a deploy's gunicorn master run by its systemd units (installer/systemd.py).

Processes as in the process runtime (procs.py finds them, status reads them), but systemd
starts, supervises (Restart=on-failure) and stops them, and holds the listening socket. A
switch (upgrade, rollback) points the unit at the target release and restarts the service:
the socket stays open in systemd, so requests arriving meanwhile wait instead of failing,
and the new master is proved healthy on the public port before the switch commits.
"""

from __future__ import annotations

from typing import Any

from .. import filemodes, procs, serviceuser, systemd
from ..context import Context
from ..installed import Installed, graceful_of, venv_of
from ..layout import DeployPaths
from ..licensecheck import check_license
from .base import Candidate
from .process import ProcessRuntime


class SystemdRuntime(ProcessRuntime):
    """gunicorn masters started by systemd from the deploy's units."""

    kind = "systemd"

    def preflight(self, ctx: Context) -> str | None:
        systemd.require()
        return "systemd"

    def start(self, ctx: Context, inst: Installed, timeout: float) -> int:
        systemd.require()
        _point(inst.paths, inst.state, inst.version)
        systemd.systemctl("start", systemd.socket_name(inst.paths.name))
        systemd.systemctl("restart", systemd.unit_name(inst.paths.name))
        ctx.say(f"started {systemd.unit_name(inst.paths.name)} (release {inst.version})")
        return _serving(inst.paths, inst.state, inst.version, timeout)

    def stop(self, ctx: Context, inst: Installed) -> bool:
        if not systemd.exists(inst.paths.name):
            return super().stop(ctx, inst)
        return systemd.stop(inst.paths.name)

    def remove(self, ctx: Context, inst: Installed) -> bool:
        was = self.stop(ctx, inst)
        if systemd.exists(inst.paths.name):
            systemd.remove(inst.paths.name)
            ctx.say(f"disabled and deleted {systemd.unit_name(inst.paths.name)}")
        return was

    def describe(self, paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
        info = super().describe(paths, state, probe=probe)
        info["unit"] = systemd.unit_name(paths.name)
        if systemd.refusal() is None and systemd.exists(paths.name):
            info["unit_state"] = systemd.systemctl("is-active", info["unit"], check=False).stdout.strip()
        return info

    def start_standby(
        self, ctx: Context, paths: DeployPaths, state: dict[str, Any], version: str, timeout: float
    ) -> Candidate:
        """Restart the unit on ``version``; its socket, held by systemd, queues what arrives meanwhile."""
        systemd.require()
        venv = venv_of(paths.release(version))
        check_license(ctx.root.path, paths.name, state.get("service") or "", venv / "bin" / "python", replacing=True)
        old = systemd.main_pid(paths.name)
        _point(paths, state, version)
        ctx.say(f"restarting {systemd.unit_name(paths.name)} on release {version}; its socket stays open")
        systemd.systemctl("restart", systemd.unit_name(paths.name))
        pid = _serving(paths, state, version, timeout, old=old)
        return Candidate(version, pid, int(state.get("port") or 0), True)

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        """Nothing to open: the candidate already serves the unit's socket."""

    def stop_master(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None:
        if pid == systemd.main_pid(paths.name):
            systemd.stop(paths.name)
        else:
            super().stop_master(paths, pid, graceful, ctx)  # a master from before the unit existed

    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None:
        """Undo a switch: the unit goes back to the release it ran (state["release"])."""
        current = state_release(paths)
        if current and procs.master(paths, version=version):
            _point(paths, {}, current)
            systemd.systemctl("restart", systemd.unit_name(paths.name), check=False)
            ctx.say(f"restarted {systemd.unit_name(paths.name)} on release {current}")
        super().discard(paths, version, ctx)


def state_release(paths: DeployPaths) -> str | None:
    """The release ``current`` names (the switch's undo has not moved it yet)."""
    try:
        return paths.current.resolve(strict=True).name
    except OSError:
        return None


def _point(paths: DeployPaths, state: dict[str, Any], version: str) -> None:
    """Write the units (idempotent) and point them at ``version``."""
    release = paths.release(version)
    venv = venv_of(release)
    ids = serviceuser.ensure(say=lambda _msg: None)
    filemodes.service_dirs(paths, ids, versions=(version,))
    filemodes.prepare_shared_state(ids)
    if state:
        systemd.write_units(
            paths,
            state.get("host") or "0.0.0.0",
            int(state.get("port") or 0),
            graceful_of(release),
            serviceuser.NAME if ids else None,
        )
    systemd.select_release(paths, release, venv)


def _serving(paths: DeployPaths, state: dict[str, Any], version: str, timeout: float, old: int = 0) -> int:
    pid = systemd.await_main_pid(paths.name, timeout, old=old)
    procs.await_running(paths, pid, state.get("host") or "127.0.0.1", int(state.get("port") or 0), timeout)
    procs.point_pidfile(paths, version)
    return pid
