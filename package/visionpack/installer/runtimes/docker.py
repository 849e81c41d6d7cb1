"""The docker runtime: a deploy's service as a container of the package's image (docs/docker.md).

The containers themselves are docker_containers.py's; how a standby container takes over in a
switch is docker_standby.py's. switch.activate() drives this runtime exactly as it drives
gunicorn processes (journal, proof, commit, retire, prune, undo, recovery).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ... import handover
from ...access import probe
from ...access.scopes import OPS
from ...errors import DockerUnavailable, PackageCorrupt, StartFailed, VisionpackError
from .. import journal, procs
from ..context import Context
from ..installed import Installed, graceful_of
from ..layout import DeployPaths
from ..release import config_from_release
from . import docker_containers as dc, docker_standby as standby, docker_start
from .base import Candidate
from .process import open_gate


class DockerRuntime:
    """Containers of one deploy; ``top`` is the package whose image a new release runs on
    (default: the package install.py runs from)."""

    kind = "docker"
    gpu = False  # the image is built from the CPU lock and containers are given no GPU

    def __init__(self, top: Path | None = None, client: Any = None) -> None:
        self.top = Path(top) if top else None
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dc.connect(self.top / "original" / "wheels" if self.top else None)
        return self._client

    # --- install, start, stop, status, remove --------------------------------------------------

    def preflight(self, ctx: Context) -> str | None:
        """An engine answers (else DockerUnavailable, exit 23) and the package's image is in the
        engine or its tar is in original/images/ (else PackageCorrupt, exit 12)."""
        top = Path(self.top or ctx.source.top)
        client = dc.connect(top / "original" / "wheels")
        ref = dc.image_ref(top)
        have = dc.local_image_id(client, ref.tag)
        if have and (not ref.image_id or have == ref.image_id):
            return f"docker runtime: image {ref.tag} is in the engine"
        if ref.image_id and dc.local_image_id(client, ref.image_id):
            return f"docker runtime: image {ref.image_id[:19]} is in the engine"
        if not ref.tar.is_file():
            raise PackageCorrupt(
                f"the runtime image {ref.tar.name} is neither in the Docker engine nor in "
                f"{ref.tar.parent}; build it on the connected machine with 'bash download.sh "
                f"--image' and copy original/images/ over"
            )
        return f"docker runtime: image {ref.tag} will be loaded from {ref.tar}"

    def check_release(self, inst: Installed) -> None:
        """Nothing of the host's venv is run: the image carries the interpreter and the wheels."""

    def start(self, ctx: Context, inst: Installed, timeout: float) -> int:
        """(Re)create the container of ``inst``'s release; the host pid of its gunicorn.

        The release's start-1.sh is (re)rendered to match the container exactly. The caller
        saves ``inst.state`` (the image recorded for a kept release).
        """
        top = Path(self.top or ctx.source.top)
        client = dc.connect(top / "original" / "wheels")
        standby.clear_request(inst.paths, inst.version)  # an ordinary start, whatever a killed switch left
        image, ref = self._image_for(ctx, client, inst.state, inst.version, top)
        spec = dc.spec_for(inst.paths, inst.release, inst.version, image, host=inst.host, port=inst.port)
        docker_start.write_start_script(
            top / "start", inst.paths, spec, ref, instance=1, version=inst.version, host=inst.host, port=inst.port
        )
        return int(
            dc.run(client, spec, inst.paths, host=inst.host, port=inst.port, timeout=timeout, say=ctx.say)["pid"]
        )

    def await_serving(self, inst: Installed, pid: int, timeout: float) -> None:
        """A running container has passed /ready already (dc.run waited for it)."""

    def stop(self, ctx: Context, inst: Installed) -> bool:
        return dc.stop(inst.paths, graceful_of(inst.release), say=ctx.say)

    def remove(self, ctx: Context, inst: Installed) -> bool:
        was_running = self.stop(ctx, inst)
        dc.remove(inst.paths, say=ctx.say)  # docker rm -f: nothing of the deploy is left in the engine
        return was_running

    def describe(self, paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
        """The process runtime's shape, plus ``containers`` and ``running_release``."""
        host, port = state.get("host"), state.get("port")
        desired = state.get("desired") or "stopped"
        try:
            st = dc.status(paths, host=host, port=port, probe=probe)
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
            "deploy": paths.name,
            "service": state.get("service"),
            "state": run_state,
            "desired": desired,
            "release": state.get("release"),
            "host": host,
            "port": port,
            "workers": state.get("workers"),
            "pid": pid,
            "worker_pids": procs.children(pid) if pid else [],
            "ready": st["ready"],
            "ready_detail": st["ready_detail"],
            "url": f"http://{procs.probe_host(host or '127.0.0.1')}:{port}/{paths.name}/" if port else None,
            "stale_pidfile": False,
            "interrupted_operation": state.get("operation"),
            "path": str(paths.dir),
            "runtime": self.kind,
            "containers": st["containers"],
            # A start-N.sh run by hand may run another kept release than state.json's current one.
            "running_release": (st["containers"][0]["version"] if st["containers"] and pid else None),
        }

    # --- the switch ----------------------------------------------------------------------------

    def serving(self, paths: DeployPaths, version: str) -> int | None:
        """Host pid of the running container master of release ``version``."""
        for c in dc.containers(self.client, paths):
            info = dc.info(c)
            if info["running"] and info["version"] == version and info["pid"]:
                return int(info["pid"])
        return None

    def start_standby(
        self, ctx: Context, paths: DeployPaths, state: dict[str, Any], version: str, timeout: float
    ) -> Candidate:
        old = state["release"]
        port = int(state.get("port") or 0)
        found = dc.containers(self.client, paths)
        running = [c for c in found if dc.info(c)["running"]]
        # The current release's container, else whatever a start-N.sh run by hand left serving.
        source = next(
            (c for c in running if c.labels.get(f"{dc.LABEL}.version") == old), running[0] if running else None
        )
        from_release = None
        if source is not None:
            # The master names its address by config.yml's release path (not the label's realpath).
            from_release = config_from_release(Path(source.labels[f"{dc.LABEL}.release"])).release
            self._check_handover(from_release, port)  # ConnectionError: switch falls back to a restart
        else:
            for c in found:  # stopped or crashed: nothing serves, and the name is the standby's to take
                c.remove(force=True)
        target = Installed(paths, state, version)
        release = Path(os.path.realpath(target.release))
        image, ref = self._image_for(ctx, self.client, state, version, self.top)
        spec = dc.spec_for(paths, release, version, image, host=target.host, port=port)
        docker_start.write_start_script(
            Path(self.top or ctx.source.top) / "start",
            paths,
            spec,
            ref,
            instance=1,
            version=version,
            host=target.host,
            port=port,
        )
        spare = replace(spec, name=standby.standby_name(spec.name))
        run_dir = paths.release_run(version)
        try:
            standby.write_request(paths, run_dir, from_release)
            dc.remove_name(self.client, spare.name, paths)
            container = self.client.containers.run(detach=True, **spare.sdk_kwargs())
        except VisionpackError:
            raise
        except Exception as exc:  # the SDK's errors are OSErrors: not the handover fallback's business
            raise StartFailed(f"cannot create the standby container {spare.name}: {exc}") from None
        ctx.say(
            f"started container {spare.name} ({container.short_id}) for release {version} on standby; "
            f"waiting up to {timeout:.0f} s for it to be ready"
        )
        try:
            # /ready names config.yml's release path; the label holds its realpath.
            names = {str(release), str(paths.release(version))}
            # /ready names the release only to ops rights: a one-off key when the ops policy wants one.
            with probe.credential(paths.data, (OPS,), "127.0.0.1", ttl=timeout + 60) as auth:
                pid, probe_port = standby.wait_ready(
                    paths, state, container, run_dir, names, int(state.get("workers") or 1), timeout, auth
                )
        except BaseException:
            standby.remove_quietly(container)
            raise
        return Candidate(version, pid, probe_port, from_release is not None)

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        open_gate(paths, cand)  # the flag is in run/<version>/, which the container sees

    def stop_master(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None:
        """Retire the container whose master is host pid ``pid``: docker stop (TERM: graceful), rm."""
        c = self._by_pid(paths, pid)
        if c is None:  # a process master of this deploy (e.g. before it moved to docker)
            procs.stop(paths, graceful, pid=pid, say=ctx.say)
            return
        ctx.say(f"stopping container {c.name} (release {c.labels.get(dc.LABEL + '.version')}) gracefully")
        c.stop(timeout=int(graceful + 5))
        c.remove(force=True)

    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None:
        """Remove the standby container of ``version`` (undo), whatever state it reached.

        By name and label, not by its master: an installer killed right after creating it may
        leave one whose gunicorn is not up yet, and it must not take the socket later.
        """
        name = standby.standby_name(dc.container_name(paths.name, 1))
        for c in dc.containers(self.client, paths):
            if c.name != name or c.labels.get(f"{dc.LABEL}.version") != version:
                continue
            if c.status == "running" and paths.public_flag(version).exists():
                c.stop(timeout=int(graceful_of(paths.release(version)) + 5))  # it may have taken connections
            c.remove(force=True)
            ctx.say(f"removed the standby container {c.name} of release {version}")
        standby.clear_request(paths, version)

    def settle(self, paths: DeployPaths, ctx: Context) -> None:
        standby.settle_names(self.client, paths, say=ctx.say)

    def record_started(self, paths: DeployPaths, state: dict[str, Any], version: str) -> None:
        """Kept now: remember the image it runs on, so a later rollback to it uses the same one."""
        for c in dc.status(paths, probe=False, client=self.client)["containers"]:
            if c["version"] == version and c["running"]:
                image_id = dc.local_image_id(self.client, c["image"])
                state["releases"][version]["image"] = {"tag": c["image"], "id": image_id}
                journal.save(paths, state)
                break

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _image_for(
        ctx: Context, client: Any, state: dict[str, Any], version: str, top: Path | None = None
    ) -> tuple[str, dc.ImageRef]:
        """(image to run, its ref) for release ``version``, loading it if the engine lacks it.

        The image is the one recorded for the release at its first start (so a newer package does
        not silently change it), else the package's (``top``; an upgrade passes the new package).
        Only a kept release records its image: an upgrade's target is not kept before its commit
        (and switch.undo deletes a target it finds unkept).
        """
        top = Path(top or ctx.source.top)
        kept = state.get("releases") or {}
        found = kept.get(version)
        rec: dict[str, Any] = found if isinstance(found, dict) else {}
        want = rec.get("image") or {}
        ref = dc.image_ref(top)
        if want.get("id") and dc.local_image_id(client, want["id"]):
            image = want["tag"] if dc.local_image_id(client, want.get("tag", "")) == want["id"] else want["id"]
            return image, replace(ref, tag=want.get("tag") or ref.tag, image_id=want["id"])
        image = dc.image_id_or_tag(client, ref, ctx.say)
        if version in kept:
            rec["image"] = {"tag": ref.tag, "id": dc.local_image_id(client, image)}
        return image, ref

    @staticmethod
    def _check_handover(from_release: str, port: int) -> None:
        try:
            handed = handover.fetch(None, addr=handover.release_address(from_release))
        except OSError as exc:
            raise ConnectionError(f"no handover socket for {from_release} ({exc})") from None
        try:
            if handed.public(port) is None:
                raise ConnectionError(f"the master of {from_release} has no listener on port {port}")
        finally:
            handed.close()

    def _by_pid(self, paths: DeployPaths, pid: int) -> Any:
        for c in dc.containers(self.client, paths):
            if (c.attrs.get("State") or {}).get("Pid") == pid:
                return c
        return None
