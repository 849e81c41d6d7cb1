"""The zero-downtime switch for docker deploys: ``switch.Runtime`` implemented with containers.

switch.activate() drives it exactly as it drives gunicorn processes (journal, proof, commit,
retire, prune, undo, recovery); what differs is how a standby master gets the listening
socket. install.py cannot hand descriptors into a container, so it writes a standby request
into the target release's run directory (mounted read-write in the container) and the new
container's master fetches the socket and the licence slot from the old container's master
itself, over the abstract unix socket both see through the host's network namespace
(``handover.release_address``: named by release, since every container's master is pid 1).
The new container runs beside the old one under a temporary name and is renamed to
``visionpack-<deploy>-1`` once the old one is gone (docs/docker.md "Upgrade and rollback").
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from ..access import probe
from ..access.scopes import OPS
from ..errors import StartFailed, VisionpackError
from ..fsutil import atomic_write
from . import docker_runtime as dr
from . import handover, journal, procs
from .layout import DeployPaths
from .release import config_from_release, remove_tree
from .switch import PROCESS, Candidate, graceful_of

STANDBY_SUFFIX = "-next"


def standby_name(name: str) -> str:
    return name + STANDBY_SUFFIX


class ContainerRuntime:
    """Containers of one deploy; ``top`` is the package whose image a new release runs on."""

    def __init__(self, top: Optional[Path] = None, client: Any = None) -> None:
        self.top = Path(top) if top else None
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dr.connect(self.top / "original" / "wheels" if self.top else None)
        return self._client

    # --- switch.Runtime ----------------------------------------------------------------------

    def serving(self, paths: DeployPaths, version: str) -> Optional[int]:
        """Host pid of the running container master of release ``version``."""
        for c in dr.containers(self.client, paths):
            info = dr.info(c)
            if info["running"] and info["version"] == version and info["pid"]:
                return int(info["pid"])
        return None

    def start_standby(self, ctx: Any, paths: DeployPaths, state: dict, version: str, timeout: float) -> Candidate:
        old = state["release"]
        port = int(state.get("port") or 0)
        found = dr.containers(self.client, paths)
        running = [c for c in found if dr.info(c)["running"]]
        # The current release's container, else whatever a start-N.sh run by hand left serving.
        source = next((c for c in running if c.labels.get(f"{dr.LABEL}.version") == old), running[0] if running else None)
        from_release = None
        if source is not None:
            # The master names its address by config.yml's release path (not the label's realpath).
            from_release = config_from_release(Path(source.labels[f"{dr.LABEL}.release"])).release
            self._check_handover(from_release, port)  # ConnectionError: switch falls back to a restart
        else:
            for c in found:  # stopped or crashed: nothing serves, and the name is the standby's to take
                c.remove(force=True)
        from .docker_install import Release, image_for

        target = Release(paths, state, version)
        release = Path(os.path.realpath(target.release))
        image, ref = image_for(ctx, self.client, state, version, self.top)
        spec = dr.spec_for(paths, release, version, image, host=target.host, port=port)
        dr.write_start_script(Path(self.top or ctx.source.top) / "start", paths, spec, ref, instance=1,
                              version=version, host=target.host, port=port)
        standby = replace(spec, name=standby_name(spec.name))
        run_dir = paths.release_run(version)
        try:
            self._request(paths, run_dir, from_release)
            dr.remove_name(self.client, standby.name, paths)
            container = self.client.containers.run(detach=True, **standby.sdk_kwargs())
        except VisionpackError:
            raise
        except Exception as exc:  # the SDK's errors are OSErrors: not the handover fallback's business
            raise StartFailed(f"cannot create the standby container {standby.name}: {exc}") from None
        ctx.say(f"started container {standby.name} ({container.short_id}) for release {version} on standby; "
                f"waiting up to {timeout:.0f} s for it to be ready")
        try:
            # /ready names config.yml's release path; the label holds its realpath.
            names = {str(release), str(paths.release(version))}
            # /ready names the release only to ops rights: a one-off key when the ops policy wants one.
            with probe.credential(paths.data, (OPS,), "127.0.0.1", ttl=timeout + 60) as auth:
                pid, probe_port = self._wait_standby(paths, state, container, run_dir, names,
                                                     int(state.get("workers") or 1), timeout, auth)
        except BaseException:
            _remove_quietly(container)
            raise
        return Candidate(version, pid, probe_port, from_release is not None)

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        PROCESS.open_public(paths, cand)  # the flag is in run/<version>/, which the container sees

    def stop(self, paths: DeployPaths, pid: int, graceful: float, ctx: Any) -> None:
        """Retire the container whose master is host pid ``pid``: docker stop (TERM: graceful), rm."""
        c = self._by_pid(paths, pid)
        if c is None:  # a process master of this deploy (e.g. before it moved to docker)
            procs.stop(paths, graceful, pid=pid, say=ctx.say)
            return
        ctx.say(f"stopping container {c.name} (release {c.labels.get(dr.LABEL + '.version')}) gracefully")
        c.stop(timeout=int(graceful + 5))
        c.remove(force=True)

    def discard(self, paths: DeployPaths, version: str, ctx: Any) -> None:
        """Remove the standby container of ``version`` (undo), whatever state it reached.

        By name and label, not by its master: an installer killed right after creating it may
        leave one whose gunicorn is not up yet, and it must not take the socket later.
        """
        name = standby_name(dr.container_name(paths.name, 1))
        for c in dr.containers(self.client, paths):
            if c.name != name or c.labels.get(f"{dr.LABEL}.version") != version:
                continue
            if c.status == "running" and paths.public_flag(version).exists():
                c.stop(timeout=int(graceful_of(paths.release(version)) + 5))  # it may have taken connections
            c.remove(force=True)
            ctx.say(f"removed the standby container {c.name} of release {version}")
        clear_request(paths, version)

    def settle(self, paths: DeployPaths, ctx: Any) -> None:
        settle_names(self.client, paths, say=ctx.say)

    def start(self, ctx: Any, paths: DeployPaths, state: dict, version: str, timeout: float) -> int:
        """Recreate the container from ``version`` (the stop-then-start fallback)."""
        from .docker_install import Release, start_installed

        return start_installed(ctx, Release(paths, state, version), timeout=timeout, top=self.top)

    # --- helpers -----------------------------------------------------------------------------

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

    @staticmethod
    def _request(paths: DeployPaths, run_dir: Path, from_release: Optional[str]) -> None:
        """The standby request the new container's master consumes (start/gunicorn_conf.py)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        flag = paths.public_flag(run_dir.name)
        remove_tree(flag)  # a flag left by an earlier master of this release must not open the gate
        remove_tree(run_dir / handover.STANDBY_ANSWER)
        dr.prepare_host(paths)
        req = run_dir / handover.STANDBY_REQUEST
        atomic_write(req, json.dumps({"from_release": from_release, "flag": str(flag)}))
        if os.geteuid() == 0:
            os.chown(req, *dr.service_ids())  # the master deletes it before serving

    def _wait_standby(self, paths: DeployPaths, state: dict, container: Any, run_dir: Path, release: set,
                      workers: int, timeout: float, headers: Optional[dict] = None) -> tuple[int, int]:
        """(host pid, probe port) once /ready on the probe port is this release's and every worker booted."""
        deadline = time.monotonic() + timeout
        pid = probe_port = None
        last: Any = None
        while True:
            container.reload()
            st = container.attrs["State"]
            if st.get("Status") in ("exited", "dead") or st.get("Restarting") or container.attrs.get("RestartCount", 0):
                raise StartFailed(f"standby container {container.name} stopped before it was ready (exit code "
                                  f"{st.get('ExitCode')})\n{dr.failure_detail(container, paths)}")
            if pid is None and st.get("Pid"):
                pid = int(st["Pid"])
                journal.begin(paths, state, state["operation"]["op"], "prove", candidate=pid)
            if probe_port is None:
                try:
                    probe_port = int(json.loads((run_dir / handover.STANDBY_ANSWER).read_text())["probe_port"])
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            if pid and probe_port:
                code, body = procs.get_ready("127.0.0.1", probe_port, headers=headers)
                last = (code, body)
                if code == 200 and body and body.get("release") in release \
                        and booted_workers(pid, run_dir) >= workers:
                    return pid, probe_port
            if time.monotonic() >= deadline:
                raise StartFailed(f"standby container {container.name} not ready after {timeout:.0f} s (probe port "
                                  f"{probe_port}, last /ready answer {last})\n{dr.failure_detail(container, paths)}")
            time.sleep(0.3)

    def _by_pid(self, paths: DeployPaths, pid: int) -> Any:
        for c in dr.containers(self.client, paths):
            if (c.attrs.get("State") or {}).get("Pid") == pid:
                return c
        return None


def clear_request(paths: DeployPaths, version: str) -> None:
    """Drop a standby request no master consumed (a killed installer): the release's next
    container must start normally, not look for a master that is gone."""
    for name in (handover.STANDBY_REQUEST, handover.STANDBY_ANSWER):
        remove_tree(paths.release_run(version) / name)


def booted_workers(master: int, run_dir: Path) -> int:
    """Live workers of host pid ``master`` that have loaded their app (run/<version>/booted/<pid>).

    A worker names its file by its pid inside the container; the host sees that pid as the
    last field of NSpid in /proc/<host pid>/status.
    """
    try:
        booted = {int(n) for n in os.listdir(run_dir / "booted") if n.isdigit()}
    except OSError:
        return 0
    return len({_inner_pid(p) for p in procs.children(master)} & booted)


def _inner_pid(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def settle_names(client: Any, paths: DeployPaths, *, say: Any = print) -> None:
    """A standby that took over gets the canonical name once the old container is gone."""
    canonical = dr.container_name(paths.name, 1)
    found = dr.containers(client, paths)
    if any(c.name == canonical for c in found):
        return
    running = [c for c in found if c.name == standby_name(canonical) and c.status == "running"]
    if len(running) == 1:
        running[0].rename(canonical)
        say(f"renamed container {running[0].name} to {canonical}")


def _remove_quietly(container: Any) -> None:
    try:
        container.remove(force=True)
    except Exception:  # already gone
        pass
