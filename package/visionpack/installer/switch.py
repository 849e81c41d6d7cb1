"""Switch a deploy from its current release to another kept one without failing a request.

Used by ``upgrade`` (to a release it just built) and ``rollback`` (to a kept one), and by
recovery to finish or undo a switch a killed installer left half done. Steps, each journaled
before it runs (the op record carries ``release``, ``from``, ``candidate``, ``old_pid``)::

    start    fetch the running master's listening socket + license slot (handover), bind a
             private probe port, start the target release's master on both, public held back
    prove    /ready on the probe port, then a real inference on a bundled sample (health.py)
    switch   open the public gate (serve-public flag), current -> target, run/gunicorn.pid ->
             target, then THE COMMIT: state.json names the target release
    retire   TERM the old master (its workers finish what they accepted; the socket lives on)
    prune    keep the last N releases

A failure before the commit stops the candidate and leaves the old release serving; the
caller reports why. The process runtime (gunicorn on the host) is the one implemented here;
``Runtime`` is the seam a docker runtime plugs into.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from ..access import probe
from ..access.scopes import INFER
from ..errors import PortInUse, StartFailed, VisionpackError
from ..fsutil import atomic_symlink, atomic_write
from . import handover, health, journal, procs, releases, venv_gc
from .context import Context
from .layout import DeployPaths
from .licensecheck import check_license
from .release import config_from_release, read_info, remove_tree


def release_down(detail: str) -> StartFailed:
    """A switch failed and the old release could not be brought back either: not 'rolled back'.

    A plain StartFailed (exit 17) marked ``down``; no subclass, so the error table stays one row.
    """
    err = StartFailed(detail)
    err.down = True  # type: ignore[attr-defined]
    return err


class Runtime(Protocol):
    """What the switch needs from a runtime: ProcessRuntime here, docker_switch.ContainerRuntime.

    Masters are named by their host pid in both (procs.masters finds a container's gunicorn in
    the host's /proc too); ``stop`` and ``discard`` turn a pid into whatever the runtime stops.
    """

    def serving(self, paths: DeployPaths, version: str) -> Optional[int]: ...
    def start_standby(self, ctx: Context, paths: DeployPaths, state: dict, version: str, timeout: float) -> "Candidate": ...
    def open_public(self, paths: DeployPaths, cand: "Candidate") -> None: ...
    def stop(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None: ...
    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None: ...
    def settle(self, paths: DeployPaths, ctx: Context) -> None: ...
    def start(self, ctx: Context, paths: DeployPaths, state: dict, version: str, timeout: float) -> int: ...


@dataclass
class Candidate:
    version: str
    pid: int
    probe_port: int
    handed_over: bool     # shares the old master's socket (zero downtime) or bound its own


def runtime_of(release: Path) -> Path:
    return Path(read_info(release).get("runtime") or "")


def graceful_of(release: Path) -> float:
    try:
        return float(config_from_release(release).graceful_timeout)
    except Exception:  # a damaged config must not stop us from stopping a service
        return 30.0


class ProcessRuntime:
    """gunicorn masters on this host, handing the listening socket over (handover.py)."""

    def serving(self, paths: DeployPaths, version: str) -> Optional[int]:
        return procs.master(paths, version=version)

    def start_standby(self, ctx: Context, paths: DeployPaths, state: dict, version: str, timeout: float) -> Candidate:
        release = paths.release(version)
        venv = runtime_of(release)
        if not (venv / "bin" / "gunicorn").exists():
            raise StartFailed(f"runtime {venv} of release {version} is missing; reinstall that release")
        host, port = state.get("host") or "127.0.0.1", int(state.get("port") or 0)
        old_pid = procs.master(paths, version=state.get("release")) or procs.master(paths)
        handed: Optional[handover.Handed] = None
        public: Optional[socket.socket] = None
        if old_pid:
            handed = handover.fetch(old_pid)  # OSError: the caller falls back to a restart
            public = handed.public(port)
            if public is None:
                handed.close()
                raise ConnectionError(f"master {old_pid} has no listener on port {port}")
        check_license(ctx.root.path, paths.name, state.get("service") or "", venv / "bin" / "python",
                      replacing=bool(handed and handed.slot_fd is not None))
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
            proc = procs.launch(paths, venv, release, listeners=[public.fileno(), probe.fileno()],
                                slot_fd=handed.slot_fd if handed else None,
                                extra_env={handover.ENV_FLAG: str(flag)})
        finally:
            probe_port = probe.getsockname()[1]
            # Our copies go; the sockets live on in the old master (if any) and the new one.
            probe.close()
            if handed:
                handed.close()
            else:
                public.close()
        journal.begin(paths, state, state["operation"]["op"], "prove", candidate=proc.pid)
        ctx.say(f"started release {version} on standby (pid {proc.pid}, probe port {probe_port}); "
                f"waiting up to {timeout:.0f} s for /ready")
        started = time.monotonic()
        procs.wait_ready(paths, proc, "127.0.0.1", probe_port, timeout)
        _wait_all_workers(paths, proc, version, int(state.get("workers") or 1), timeout - (time.monotonic() - started))
        return Candidate(version, proc.pid, probe_port, handed is not None)

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        atomic_write(paths.public_flag(cand.version), f"{cand.pid}\n")
        # Workers look for the flag every FLAG_POLL s; meanwhile the old master keeps serving.
        time.sleep(handover.FLAG_POLL * 4 + 0.1)

    def stop(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None:
        procs.stop(paths, graceful, pid=pid, say=ctx.say)

    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None:
        """Stop the masters of ``version``, the target of a switch that is being undone."""
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
        """After a switch: nothing to tidy for processes (the pid file was pointed at commit)."""

    def start(self, ctx: Context, paths: DeployPaths, state: dict, version: str, timeout: float) -> int:
        """Plain start (bind the port itself) for the stop-then-start fallback."""
        return procs.start(paths, runtime_of(paths.release(version)), paths.release(version), state["host"],
                           int(state["port"]), timeout=timeout, say=ctx.say)


PROCESS = ProcessRuntime()


def runtime_for(state: Optional[dict[str, Any]]) -> Runtime:
    """The deploy's runtime: ``state["runtime"]`` is "docker" for container deploys."""
    if (state or {}).get("runtime") == "docker":
        from .docker_switch import ContainerRuntime

        return ContainerRuntime()
    return PROCESS


def activate(ctx: Context, paths: DeployPaths, state: dict[str, Any], target: str, *, op: str,
             timeout: float, runtime: Optional[Runtime] = None) -> dict[str, Any]:
    """Make kept release ``target`` current (and serving, if the deploy runs); the caller holds the lock.

    ``state["operation"]`` must already record ``op`` with ``release=target``. Raises on a
    failure before the commit, after undoing it (the old release keeps serving).
    """
    runtime = runtime or runtime_for(state)
    old = state["release"]
    old_pid = runtime.serving(paths, old) or procs.master(paths)
    journal.begin(paths, state, op, "start", old_pid=old_pid)
    result: dict[str, Any] = {"deploy": paths.name, "from": old, "release": target, "started": False}
    if old_pid is None and state.get("desired") != "running":
        ctx.say(f"{paths.name} is stopped: switching to {target} without starting it")
        commit(ctx, paths, state, target, op)
        return finish(ctx, paths, state, op, result, runtime)
    try:
        cand = runtime.start_standby(ctx, paths, state, target, timeout)
    except (OSError, ConnectionError) as exc:
        if old_pid is None:
            raise
        ctx.warn(f"the running master {old_pid} cannot hand its socket over ({exc}); "
                 f"falling back to stop-then-start, which drops requests while {target} starts")
        return _restart_switch(ctx, paths, state, target, op, old_pid, timeout, result, runtime)
    except VisionpackError:
        undo(ctx, paths, state, say_why=False, runtime=runtime)
        raise
    try:
        with probe.credential(paths.data, (INFER,), "127.0.0.1") as auth:  # policy infer=key: a one-off key
            proof = health.prove(state.get("service") or "", paths.name, paths.release(target), cand.probe_port,
                                 headers=auth)
        ctx.say(f"release {target} is healthy: {proof}")
        journal.begin(paths, state, op, "switch")
        runtime.open_public(paths, cand)
        journal.checkpoint(op, "public-open")
    except BaseException:
        undo(ctx, paths, state, say_why=False, runtime=runtime)
        raise
    commit(ctx, paths, state, target, op)
    result.update(started=True, pid=cand.pid, handed_over=cand.handed_over, proof=proof)
    return finish(ctx, paths, state, op, result, runtime)


def commit(ctx: Context, paths: DeployPaths, state: dict[str, Any], target: str, op: str) -> None:
    atomic_symlink(f"releases/{target}", paths.current)
    journal.checkpoint(op, "current-switched")
    if procs.master(paths, version=target):
        procs.point_pidfile(paths, target)
    state["release"] = target
    info = state.setdefault("releases", {}).setdefault(target, {})
    if "installed_at" not in info:  # a release the upgrade just built becomes kept now
        built = read_info(paths.release(target))
        info.update(installed_at=built.get("installed_at") or journal.now(), runtime=built.get("runtime"))
    releases.record_activation(state, target, op)
    journal.begin(paths, state, op, "retire")  # THE COMMIT: saved together with the release
    ctx.say(f"{paths.name}: traffic now goes to release {target}")


def finish(ctx: Context, paths: DeployPaths, state: dict[str, Any], op: str, result: dict[str, Any],
           runtime: Optional[Runtime] = None) -> dict[str, Any]:
    """After the commit: stop every master of another release, prune, clear the record."""
    runtime = runtime or runtime_for(state)
    target = state["release"]
    for pid, version in procs.masters(paths).items():
        if version != target:
            old_release = paths.release(version) if version else paths.release(target)
            ctx.say(f"stopping release {version} (pid {pid}) gracefully")
            runtime.stop(paths, pid, graceful_of(old_release), ctx)
            if version:
                remove_tree(paths.public_flag(version))
    runtime.settle(paths, ctx)
    journal.begin(paths, state, op, "prune")
    result["pruned"] = releases.prune(paths, state, ctx.say)
    releases.sweep_orphans(paths, state, ctx.say)
    result["runtimes_removed"] = venv_gc.collect_safely(ctx.root, ctx.say)
    journal.clear(paths, state)
    return result


def undo(ctx: Context, paths: DeployPaths, state: dict[str, Any], *, say_why: bool = True,
         runtime: Optional[Runtime] = None) -> None:
    """Before the commit: stop the target's master, drop a release the op built, restore links."""
    runtime = runtime or runtime_for(state)
    op = state.get("operation") or {}
    target, kind = op.get("release"), op.get("op")
    current = state["release"]
    if target and target != current:
        runtime.discard(paths, target, ctx)
        remove_tree(paths.public_flag(target))
        if kind == "upgrade" and target not in (state.get("releases") or {}):
            remove_tree(paths.release(target))
            remove_tree(paths.release_run(target))
            ctx.say(f"removed release {target}")
    if not paths.current.is_symlink() or os.readlink(paths.current) != f"releases/{current}":
        atomic_symlink(f"releases/{current}", paths.current)
    if procs.master(paths, version=current):
        procs.point_pidfile(paths, current)
    journal.clear(paths, state)
    if say_why:
        ctx.say(f"{paths.name} stays on release {current}")


def _wait_all_workers(paths: DeployPaths, proc: Any, version: str, workers: int, timeout: float) -> None:
    """Every worker has loaded its app: a worker failing to boot later would take the master down."""
    booted_dir = paths.release_run(version) / "booted"
    deadline = time.monotonic() + max(timeout, 5.0)
    while True:
        if proc.poll() is not None:
            raise StartFailed(f"gunicorn exited with status {proc.returncode} while its workers were booting\n"
                              f"{procs.logs_tail(paths)}")
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
            raise StartFailed(f"only {len(live & booted)} of {workers} workers of release {version} loaded "
                              f"their app in time; stopped it\n{procs.logs_tail(paths)}")
        time.sleep(0.2)


def _wait_exit(pid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = procs.proc_info(pid)
        if info is None or not info.alive:
            return
        time.sleep(0.05)


def _restart_switch(ctx: Context, paths: DeployPaths, state: dict[str, Any], target: str, op: str, old_pid: int,
                    timeout: float, result: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    """Fallback for a master that cannot hand over (started by an older installer): stop, start."""
    old = state["release"]
    journal.begin(paths, state, op, "restart")
    runtime.stop(paths, old_pid, graceful_of(paths.release(old)), ctx)
    try:
        pid = runtime.start(ctx, paths, state, target, timeout)
    except VisionpackError as exc:
        ctx.say(f"release {target} did not start; starting {old} again")
        try:
            runtime.start(ctx, paths, state, old, timeout)
        except VisionpackError as again:
            undo(ctx, paths, state, runtime=runtime)
            raise release_down(f"release {target} did not start ({exc.detail}), and {old} did not start again "
                              f"either ({again.detail}); {paths.name} is down: fix the cause, then "
                              f"'install.py start {paths.name}'") from None
        undo(ctx, paths, state, runtime=runtime)
        raise
    commit(ctx, paths, state, target, op)
    result.update(started=True, pid=pid, handed_over=False)
    return finish(ctx, paths, state, op, result, runtime)
