"""The installer's seam for the docker runtime: what install/start/stop/status/upgrade/rollback call
for a deploy whose ``state["runtime"]`` is ``"docker"`` (docs/docker.md). The containers themselves
are docker_runtime.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import StartFailed
from . import journal
from .docker_runtime import (local_image_id, connect, image_id_or_tag, image_ref, run, spec_for, status, stop,
                             write_start_script)
from .layout import DeployPaths
from .procs import children, probe_host


def is_docker(state: Optional[Mapping[str, Any]]) -> bool:
    return (state or {}).get("runtime") == "docker"


def start_installed(ctx: Any, inst: Any, *, timeout: float, top: Optional[Path] = None) -> int:
    """Start a docker deploy (after the licence and port checks); the host pid of its gunicorn.

    The image is the one recorded for the release at its first start (so a newer package does
    not silently change it), else the package's; the release's start-1.sh is (re)rendered to
    match the container exactly. The caller saves ``inst.state``. ``top``: the package whose
    image to load (default the installer's own; an upgrade passes the new package).
    """
    top = Path(top or ctx.source.top)
    client = connect(top / "original" / "wheels")
    # Only a kept release records its image: an upgrade's target is not kept before its commit
    # (and switch.undo deletes a target it finds unkept).
    kept = inst.state.get("releases") or {}
    rec = kept.get(inst.version) if isinstance(kept.get(inst.version), dict) else {}
    want = rec.get("image") or {}
    ref = image_ref(top)
    if want.get("id") and local_image_id(client, want["id"]):
        image = want["tag"] if local_image_id(client, want.get("tag", "")) == want["id"] else want["id"]
        ref = replace(ref, tag=want.get("tag") or ref.tag, image_id=want["id"])
    else:
        image = image_id_or_tag(client, ref, ctx.say)
        if inst.version in kept:
            rec["image"] = {"tag": ref.tag, "id": local_image_id(client, image)}
    spec = spec_for(inst.paths, inst.release, inst.version, image, host=inst.host, port=inst.port)
    write_start_script(top / "start", inst.paths, spec, ref, instance=1, version=inst.version, host=inst.host,
                       port=inst.port)
    return int(run(client, spec, inst.paths, host=inst.host, port=inst.port, timeout=timeout, say=ctx.say)["pid"])


def stop_installed(ctx: Any, inst: Any) -> bool:
    from .switch import graceful_of

    return stop(inst.paths, graceful_of(inst.release), say=ctx.say)


def describe(paths: DeployPaths, state: Mapping[str, Any], *, probe: bool = True) -> dict[str, Any]:
    """deployment.describe()'s shape for a docker deploy, plus ``runtime`` and ``containers``."""
    host, port = state.get("host"), state.get("port")
    desired = state.get("desired") or "stopped"
    try:
        st = status(paths, host=host, port=port, probe=probe)
    except StartFailed as exc:  # no engine: nothing can be running
        st = {"state": "absent", "containers": [], "pid": None, "ready": None, "ready_detail": exc.detail}
    if st["state"] == "running":
        run_state = "running"
    elif not state.get("release"):
        run_state = "not-installed"
    else:
        run_state = "failed" if desired == "running" else "stopped"
    pid = st["pid"] if run_state == "running" else None
    return {
        "deploy": paths.name, "service": state.get("service"), "state": run_state, "desired": desired,
        "release": state.get("release"), "host": host, "port": port, "workers": state.get("workers"),
        "pid": pid, "worker_pids": children(pid) if pid else [], "ready": st["ready"],
        "ready_detail": st["ready_detail"],
        "url": f"http://{probe_host(host or '127.0.0.1')}:{port}/{paths.name}/" if port else None,
        "stale_pidfile": False, "interrupted_operation": state.get("operation"), "path": str(paths.dir),
        "runtime": "docker", "containers": st["containers"],
        # A start-N.sh run by hand may run another kept release than state.json's current one.
        "running_release": (st["containers"][0]["version"] if st["containers"] and pid else None),
    }


@dataclass(frozen=True)
class _Release:
    """What start_installed needs of a deploy at one (kept) release, not necessarily the current one."""

    paths: DeployPaths
    state: dict
    version: str

    release = property(lambda self: self.paths.release(self.version))
    host = property(lambda self: self.state.get("host") or "127.0.0.1")
    port = property(lambda self: int(self.state.get("port") or 0))


def switch_release(ctx: Any, paths: DeployPaths, state: dict, target: str, *, op: str, timeout: float,
                   top: Optional[Path] = None) -> dict[str, Any]:
    """upgrade/rollback of a docker deploy: recreate its container from release ``target``.

    EasyDL's rollback steps (``docker rm -f`` + ``docker run`` of the wanted release): requests
    are refused while ``target`` loads, since containers do not hand the listening socket over
    yet (docs/docker.md). If ``target`` does not become ready, the old release's container is
    recreated and the switch undone. ``state["operation"]`` must record ``op`` with ``release``.
    ``top``: the package holding ``target``'s image (upgrade: the new package).
    """
    from . import switch  # the process runtime's commit/finish/undo bookkeeping is shared

    old = state["release"]
    result: dict[str, Any] = {"deploy": paths.name, "from": old, "release": target, "started": False}
    running = status(paths, probe=False)["state"] == "running"
    if not running and state.get("desired") != "running":
        ctx.say(f"{paths.name} is stopped: switching to {target} without starting it")
    else:
        journal.begin(paths, state, op, "restart")
        try:
            pid = start_installed(ctx, _Release(paths, state, target), timeout=timeout, top=top)
        except Exception:
            ctx.say(f"release {target} did not start; recreating the container of {old}")
            start_installed(ctx, _Release(paths, state, old), timeout=timeout)
            switch.undo(ctx, paths, state)
            raise
        result.update(started=True, pid=pid, handed_over=False)
    switch.commit(ctx, paths, state, target, op)
    if result["started"]:
        # Kept now: remember the image it ran on, so a later rollback to it uses the same one.
        running = status(paths, probe=False)["containers"]
        if running and running[0]["version"] == target:
            client = connect(Path(top or ctx.source.top) / "original" / "wheels")
            image = running[0]["image"]
            state["releases"][target]["image"] = {"tag": image, "id": local_image_id(client, image)}
    return switch.finish(ctx, paths, state, op, result)



def remove(paths: DeployPaths, *, say: Any = print) -> list[str]:
    """``docker rm -f`` the deploy's containers (remove/rmall, after stop_installed)."""
    from .docker_runtime import remove as rm

    return rm(paths, say=say)
