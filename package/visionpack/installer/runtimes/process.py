"""The process runtime: a deploy's service as gunicorn masters on this host (procs.py), handing sockets over."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ... import handover
from ...errors import PortInUse, StartFailed
from ...fsutil import atomic_write
from .. import journal, procs
from ..context import Context
from ..installed import Installed, graceful_of, venv_of
from ..layout import DeployPaths
from ..licensecheck import check_license
from ..release import remove_tree
from .base import Candidate


class ProcessRuntime:
    """gunicorn masters on this host; a switch hands the listening socket to the next master."""

    kind = "process"
    gpu = True  # the runtime venv is built from the GPU lock in the GPU package

    # --- install, start, stop, status, remove --------------------------------------------------

    def preflight(self, ctx: Context) -> str | None:
        return None  # the environment check (envcheck.py) covers what processes need

    def check_release(self, inst: Installed) -> None:
        if not (inst.venv / "bin" / "gunicorn").exists():
            raise StartFailed(f"runtime {inst.venv} of release {inst.version} is missing; re-install the deploy")

    def start(self, ctx: Context, inst: Installed, timeout: float) -> int:
        return procs.start(inst.paths, inst.venv, inst.release, inst.host, inst.port, timeout=timeout, say=ctx.say)

    def await_serving(self, inst: Installed, pid: int, timeout: float) -> None:
        procs.await_running(inst.paths, pid, inst.host, inst.port, timeout)

    def stop(self, ctx: Context, inst: Installed) -> bool:
        return procs.stop(inst.paths, inst.graceful_timeout(), say=ctx.say)

    def remove(self, ctx: Context, inst: Installed) -> bool:
        return self.stop(ctx, inst)  # nothing but the processes and the deploy's files, which remove deletes

    def describe(self, paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
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
            "deploy": paths.name,
            "service": state.get("service"),
            "state": run_state,
            "desired": desired,
            "release": state.get("release"),
            "host": host,
            "port": port,
            "workers": state.get("workers"),
            "pid": pid,
            "worker_pids": workers,
            "ready": ready,
            "ready_detail": ready_detail,
            "url": f"http://{procs.probe_host(host or '127.0.0.1')}:{port}/{paths.name}/" if port else None,
            "stale_pidfile": procs.pidfile_is_stale(paths),
            "interrupted_operation": state.get("operation"),
            "path": str(paths.dir),
            "runtime": self.kind,
        }

    # --- the switch ----------------------------------------------------------------------------

    def serving(self, paths: DeployPaths, version: str) -> int | None:
        return procs.master(paths, version=version)

    def start_standby(
        self, ctx: Context, paths: DeployPaths, state: dict[str, Any], version: str, timeout: float
    ) -> Candidate:
        release = paths.release(version)
        venv = venv_of(release)
        if not (venv / "bin" / "gunicorn").exists():
            raise StartFailed(f"runtime {venv} of release {version} is missing; reinstall that release")
        host, port = state.get("host") or "127.0.0.1", int(state.get("port") or 0)
        old_pid = procs.master(paths, version=state.get("release")) or procs.master(paths)
        handed: handover.Handed | None = None
        public: socket.socket | None = None
        if old_pid:
            handed = handover.fetch(old_pid)  # OSError: the caller falls back to a restart
            public = handed.public(port)
            if public is None:
                handed.close()
                raise ConnectionError(f"master {old_pid} has no listener on port {port}")
        check_license(
            ctx.root.path,
            paths.name,
            state.get("service") or "",
            venv / "bin" / "python",
            replacing=bool(handed and handed.slot_fd is not None),
        )
        if public is None:
            try:
                public = handover.bind_public(host, port)
            except OSError as exc:
                raise PortInUse(f"cannot bind {host}:{port} for {paths.name}: {exc}") from None
        probe = handover.bind_probe()
        flag = paths.public_flag(version)
        paths.release_run(version).mkdir(parents=True, exist_ok=True)
        remove_tree(flag)  # a flag left by an earlier master of this version must not open the gate
        try:
            proc = procs.launch(
                paths,
                venv,
                release,
                listeners=[public.fileno(), probe.fileno()],
                slot_fd=handed.slot_fd if handed else None,
                extra_env={handover.ENV_FLAG: str(flag)},
            )
        finally:
            probe_port = probe.getsockname()[1]
            # Our copies go; the sockets live on in the old master (if any) and the new one.
            probe.close()
            if handed:
                handed.close()
            else:
                public.close()
        journal.begin(paths, state, state["operation"]["op"], "prove", candidate=proc.pid)
        ctx.say(
            f"started release {version} on standby (pid {proc.pid}, probe port {probe_port}); "
            f"waiting up to {timeout:.0f} s for /ready"
        )
        started = time.monotonic()
        procs.wait_ready(paths, proc, "127.0.0.1", probe_port, timeout)
        _wait_all_workers(paths, proc, version, int(state.get("workers") or 1), timeout - (time.monotonic() - started))
        return Candidate(version, proc.pid, probe_port, handed is not None)

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        open_gate(paths, cand)

    def stop_master(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None:
        procs.stop(paths, graceful, pid=pid, say=ctx.say)

    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None:
        for pid, running in procs.masters(paths).items():
            if running != version:
                continue
            if paths.public_flag(version).exists():
                # It may be serving already: TERM is graceful and the socket is shared.
                procs.stop(paths, graceful_of(paths.release(version)), pid=pid, say=ctx.say)
            else:
                procs.kill_group(pid)  # standby: it has accepted nothing from the public socket
                _wait_exit(pid)
                ctx.say(f"stopped the standby release {version} (pid {pid})")

    def settle(self, paths: DeployPaths, ctx: Context) -> None:
        """Nothing to tidy for processes (the pid file was pointed at the commit)."""

    def record_started(self, paths: DeployPaths, state: dict[str, Any], version: str) -> None:
        """Nothing to remember: release.json names the venv a release runs on."""


def open_gate(paths: DeployPaths, cand: Candidate) -> None:
    """Write the serve-public flag the candidate's workers look for (run/<version>/, seen by containers too)."""
    atomic_write(paths.public_flag(cand.version), f"{cand.pid}\n")
    # Workers look for the flag every FLAG_POLL s; meanwhile the old master keeps serving.
    time.sleep(handover.FLAG_POLL * 4 + 0.1)


def _wait_all_workers(paths: DeployPaths, proc: Any, version: str, workers: int, timeout: float) -> None:
    """Every worker has loaded its app: a worker failing to boot later would take the master down."""
    booted_dir = paths.release_run(version) / "booted"
    deadline = time.monotonic() + max(timeout, 5.0)
    while True:
        if proc.poll() is not None:
            raise StartFailed(
                f"gunicorn exited with status {proc.returncode} while its workers were booting\n"
                f"{procs.logs_tail(paths)}"
            )
        live = set(procs.children(proc.pid))
        try:
            booted = {int(n) for n in os.listdir(booted_dir) if n.isdigit()}
        except OSError:
            booted = set()
        if len(live & booted) >= workers:
            return
        if time.monotonic() >= deadline:
            procs.kill_group(proc.pid)
            proc.wait()
            raise StartFailed(
                f"only {len(live & booted)} of {workers} workers of release {version} loaded "
                f"their app in time; stopped it\n{procs.logs_tail(paths)}"
            )
        time.sleep(0.2)


def _wait_exit(pid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = procs.proc_info(pid)
        if info is None or not info.alive:
            return
        time.sleep(0.05)
