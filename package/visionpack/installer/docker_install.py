"""The installer's seam for the docker runtime: what install/start/stop/status/upgrade/rollback call
for a deploy whose ``state["runtime"]`` is ``"docker"`` (docs/docker.md). The containers themselves
are docker_runtime.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import DockerUnavailable, PackageCorrupt
from . import journal
from .docker_runtime import (ImageRef, connect, image_id_or_tag, image_ref, local_image_id, run, spec_for, status,
                             stop, write_start_script)
from .layout import DeployPaths
from .procs import children, probe_host


def is_docker(state: Optional[Mapping[str, Any]]) -> bool:
    return (state or {}).get("runtime") == "docker"


def preflight(ctx: Any, top: Optional[Path] = None) -> str:
    """Before anything is written for ``install --runtime docker``: an engine answers (else
    DockerUnavailable, exit 23) and the package's image is in the engine or its tar is in
    original/images/ (else PackageCorrupt, exit 12). Returns what was found, for the log."""
    top = Path(top or ctx.source.top)
    client = connect(top / "original" / "wheels")
    ref = image_ref(top)
    have = local_image_id(client, ref.tag)
    if have and (not ref.image_id or have == ref.image_id):
        return f"image {ref.tag} is in the engine"
    if ref.image_id and local_image_id(client, ref.image_id):
        return f"image {ref.image_id[:19]} is in the engine"
    if not ref.tar.is_file():
        err = PackageCorrupt(f"the runtime image {ref.tar.name} is neither in the Docker engine nor in {ref.tar.parent}")
        err.hint = "Build it on the connected machine with 'bash download.sh --image' and copy original/images/ over."
        raise err
    return f"image {ref.tag} will be loaded from {ref.tar}"


def image_for(ctx: Any, client: Any, state: dict, version: str, top: Optional[Path] = None) -> tuple[str, ImageRef]:
    """(image to run, its ref) for release ``version``, loading it if the engine lacks it.

    The image is the one recorded for the release at its first start (so a newer package does
    not silently change it), else the package's (``top``; an upgrade passes the new package).
    Only a kept release records its image: an upgrade's target is not kept before its commit
    (and switch.undo deletes a target it finds unkept).
    """
    top = Path(top or ctx.source.top)
    kept = state.get("releases") or {}
    rec = kept.get(version) if isinstance(kept.get(version), dict) else {}
    want = rec.get("image") or {}
    ref = image_ref(top)
    if want.get("id") and local_image_id(client, want["id"]):
        image = want["tag"] if local_image_id(client, want.get("tag", "")) == want["id"] else want["id"]
        return image, replace(ref, tag=want.get("tag") or ref.tag, image_id=want["id"])
    image = image_id_or_tag(client, ref, ctx.say)
    if version in kept:
        rec["image"] = {"tag": ref.tag, "id": local_image_id(client, image)}
    return image, ref


def start_installed(ctx: Any, inst: Any, *, timeout: float, top: Optional[Path] = None) -> int:
    """Start a docker deploy (after the licence and port checks); the host pid of its gunicorn.

    The release's start-1.sh is (re)rendered to match the container exactly. The caller saves
    ``inst.state``.
    """
    from .docker_switch import clear_request

    top = Path(top or ctx.source.top)
    client = connect(top / "original" / "wheels")
    clear_request(inst.paths, inst.version)  # an ordinary start, whatever a killed switch left
    image, ref = image_for(ctx, client, inst.state, inst.version, top)
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
    except DockerUnavailable as exc:  # no engine: nothing can be running
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
class Release:
    """What start_installed needs of a deploy at one (kept) release, not necessarily the current one."""

    paths: DeployPaths
    state: dict
    version: str

    release = property(lambda self: self.paths.release(self.version))
    host = property(lambda self: self.state.get("host") or "127.0.0.1")
    port = property(lambda self: int(self.state.get("port") or 0))


def switch_release(ctx: Any, paths: DeployPaths, state: dict, target: str, *, op: str, timeout: float,
                   top: Optional[Path] = None) -> dict[str, Any]:
    """upgrade/rollback of a docker deploy: switch.activate() with containers (docker_switch.py).

    The target's container starts beside the running one on the same listening socket, is
    proven on a private probe port, takes the public socket, and the old container is stopped
    gracefully: no request fails. If the old master cannot hand its socket over (a container
    of an older release), it is EasyDL's recreate instead (stop, run the target; requests are
    refused while it loads). ``state["operation"]`` must record ``op`` with ``release``;
    ``top``: the package holding ``target``'s image (upgrade: the new package).
    """
    from . import switch
    from .docker_switch import ContainerRuntime

    runtime = ContainerRuntime(top or ctx.source.top)
    result = switch.activate(ctx, paths, state, target, op=op, timeout=timeout, runtime=runtime)
    if result.get("started"):
        # Kept now: remember the image it runs on, so a later rollback to it uses the same one.
        for c in status(paths, probe=False, client=runtime.client)["containers"]:
            if c["version"] == target and c["running"]:
                state["releases"][target]["image"] = {"tag": c["image"], "id": local_image_id(runtime.client, c["image"])}
                journal.save(paths, state)
                break
    return result


def remove(paths: DeployPaths, *, say: Any = print) -> list[str]:
    """``docker rm -f`` the deploy's containers (remove/rmall, after stop_installed)."""
    from .docker_runtime import remove as rm

    return rm(paths, say=say)
