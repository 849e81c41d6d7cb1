"""How a standby container of the docker switch gets the old master's socket, proves ready and takes the name.

install.py cannot hand descriptors into a container, so it writes a standby request into the
target release's run directory (mounted read-write in the container) and the new container's
master fetches the socket and the licence slot from the old container's master itself, over
the abstract unix socket both see through the host's network namespace
(``handover.release_address``: named by release, since every container's master is pid 1).
The new container runs beside the old one under a temporary name and is renamed to
``visionpack-<deploy>-1`` once the old one is gone (docs/docker.md "Upgrade and rollback").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from ... import handover
from ...errors import StartFailed
from ...fsutil import atomic_write
from .. import journal, procs
from ..layout import DeployPaths
from ..release import remove_tree
from . import docker_containers as dc

STANDBY_SUFFIX = "-next"


def standby_name(name: str) -> str:
    return name + STANDBY_SUFFIX


def write_request(paths: DeployPaths, run_dir: Path, from_release: str | None) -> None:
    """The standby request the new container's master consumes (start/gunicorn_conf.py)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    flag = paths.public_flag(run_dir.name)
    remove_tree(flag)  # a flag left by an earlier master of this release must not open the gate
    remove_tree(run_dir / handover.STANDBY_ANSWER)
    dc.prepare_host(paths)
    req = run_dir / handover.STANDBY_REQUEST
    atomic_write(req, json.dumps({"from_release": from_release, "flag": str(flag)}))
    if os.geteuid() == 0:
        os.chown(req, *dc.service_ids())  # the master deletes it before serving


def clear_request(paths: DeployPaths, version: str) -> None:
    """Drop a standby request no master consumed (a killed installer): the release's next
    container must start normally, not look for a master that is gone."""
    for name in (handover.STANDBY_REQUEST, handover.STANDBY_ANSWER):
        remove_tree(paths.release_run(version) / name)


def wait_ready(
    paths: DeployPaths,
    state: dict[str, Any],
    container: Any,
    run_dir: Path,
    release: set[str],
    workers: int,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, int]:
    """(host pid, probe port) once /ready on the probe port is this release's and every worker booted."""
    deadline = time.monotonic() + timeout
    pid = probe_port = None
    last: Any = None
    while True:
        container.reload()
        st = container.attrs["State"]
        if st.get("Status") in ("exited", "dead") or st.get("Restarting") or container.attrs.get("RestartCount", 0):
            raise StartFailed(
                f"standby container {container.name} stopped before it was ready (exit code "
                f"{st.get('ExitCode')})\n{dc.failure_detail(container, paths)}"
            )
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
            if code == 200 and body and body.get("release") in release and booted_workers(pid, run_dir) >= workers:
                return pid, probe_port
        if time.monotonic() >= deadline:
            raise StartFailed(
                f"standby container {container.name} not ready after {timeout:.0f} s (probe port "
                f"{probe_port}, last /ready answer {last})\n{dc.failure_detail(container, paths)}"
            )
        time.sleep(0.3)


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


def _inner_pid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def settle_names(client: Any, paths: DeployPaths, *, say: Callable[[str], None] = print) -> None:
    """A standby that took over gets the canonical name once the old container is gone."""
    canonical = dc.container_name(paths.name, 1)
    found = dc.containers(client, paths)
    if any(c.name == canonical for c in found):
        return
    running = [c for c in found if c.name == standby_name(canonical) and c.status == "running"]
    if len(running) == 1:
        running[0].rename(canonical)
        say(f"renamed container {running[0].name} to {canonical}")


def remove_quietly(container: Any) -> None:
    try:
        container.remove(force=True)
    except Exception:  # already gone
        pass
