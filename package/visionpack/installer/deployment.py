"""Reading one installed deploy: its journal, release, runtime and live processes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import NotInstalled
from . import journal, procs, recovery
from .context import Context
from .layout import DeployPaths
from .release import read_info


@dataclass(frozen=True)
class Installed:
    paths: DeployPaths
    state: dict[str, Any]

    @property
    def version(self) -> str:
        return self.state["release"]

    @property
    def release(self) -> Path:
        return self.paths.release(self.version)

    @property
    def runtime(self) -> Path:
        info = read_info(self.release)
        return Path(info.get("runtime") or "")

    @property
    def host(self) -> str:
        return self.state.get("host") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.state.get("port") or 0)

    def graceful_timeout(self) -> float:
        from .release import config_from_release

        try:
            return float(config_from_release(self.release).graceful_timeout)
        except Exception:  # a damaged config must not stop us from stopping the service
            return 30.0


def require(ctx: Context, deploy: str, *, recover: bool = False,
            say: Optional[Callable[[str], None]] = None) -> Installed:
    """The installed deploy or NotInstalled; ``recover`` (only under the lock) repairs first."""
    paths = ctx.root.deploy(deploy)
    state = journal.load(paths)
    if recover:
        state = recovery.recover(paths, state, say or ctx.say)
    if not state or not state.get("release"):
        raise NotInstalled(f"{deploy!r} is not installed under {ctx.root.path}")
    return Installed(paths, state)


def describe(paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
    """One deploy's status as a JSON-able dict (the shape of ``status --json``)."""
    from . import docker_install

    if docker_install.is_docker(state):
        return docker_install.describe(paths, state, probe=probe)
    pid = procs.master(paths)
    workers = procs.children(pid) if pid else []
    desired = state.get("desired") or "stopped"
    if pid:
        run_state = "running"
    elif not state.get("release"):
        run_state = "not-installed"
    else:
        run_state = "failed" if desired == "running" else "stopped"
    host, port = state.get("host"), state.get("port")
    ready = None
    ready_detail = None
    if pid and probe and port:
        status, body = procs.get_ready(host or "127.0.0.1", int(port))
        ready = status == 200
        ready_detail = body if body is not None else status
    return {
        "deploy": paths.name, "service": state.get("service"), "state": run_state, "desired": desired,
        "release": state.get("release"), "host": host, "port": port, "workers": state.get("workers"),
        "pid": pid, "worker_pids": workers, "ready": ready, "ready_detail": ready_detail,
        "url": f"http://{procs.probe_host(host or '127.0.0.1')}:{port}/{paths.name}/" if port else None,
        "stale_pidfile": procs.pidfile_is_stale(paths),
        "interrupted_operation": state.get("operation"),
        "path": str(paths.dir), "runtime": "process",
    }
