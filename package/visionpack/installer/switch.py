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
caller reports why. How a master starts, proves and retires is the deploy's runtime's
(runtimes/: gunicorn processes on the host, or Docker containers); the steps are the same.
"""

from __future__ import annotations

import os
from typing import Any

from ..access import probe
from ..access.scopes import INFER
from ..errors import StartFailed, VisionpackError
from ..fsutil import atomic_symlink
from . import health, journal, procs, releases, venv_gc
from .context import Context
from .installed import Installed, graceful_of
from .layout import DeployPaths
from .release import read_info, remove_tree
from .runtimes.base import Runtime
from .runtimes.kinds import runtime_for


def release_down(detail: str) -> StartFailed:
    """A switch failed and the old release could not be brought back either: not 'rolled back'.

    A plain StartFailed (exit 17) marked ``down``; no subclass, so the error table stays one row.
    """
    err = StartFailed(detail)
    err.down = True  # type: ignore[attr-defined]
    return err


def activate(
    ctx: Context,
    paths: DeployPaths,
    state: dict[str, Any],
    target: str,
    *,
    op: str,
    timeout: float,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Make kept release ``target`` current (and serving, if the deploy runs); the caller holds the lock.

    ``state["operation"]`` must already record ``op`` with ``release=target``. Raises on a
    failure before the commit, after undoing it (the old release keeps serving). ``runtime``:
    the deploy's (runtimes.kinds.runtime_for), given the package ``target`` comes from.
    """
    runtime = runtime or runtime_for(state)
    result = _switch(ctx, paths, state, target, op, timeout, runtime)
    if result.get("started"):
        runtime.record_started(paths, state, target)
    return result


def _switch(
    ctx: Context, paths: DeployPaths, state: dict[str, Any], target: str, op: str, timeout: float, runtime: Runtime
) -> dict[str, Any]:
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
        ctx.warn(
            f"the running master {old_pid} cannot hand its socket over ({exc}); "
            f"falling back to stop-then-start, which drops requests while {target} starts"
        )
        return _restart_switch(ctx, paths, state, target, op, old_pid, timeout, result, runtime)
    except VisionpackError:
        undo(ctx, paths, state, say_why=False, runtime=runtime)
        raise
    try:
        with probe.credential(paths.data, (INFER,), "127.0.0.1") as auth:  # policy infer=key: a one-off key
            proof = health.prove(
                state.get("service") or "", paths.name, paths.release(target), cand.probe_port, headers=auth
            )
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
        info.update(installed_at=built.get("installed_at") or journal.now(), venv=built.get("runtime"))
    releases.record_activation(state, target, op)
    journal.begin(paths, state, op, "retire")  # THE COMMIT: saved together with the release
    ctx.say(f"{paths.name}: traffic now goes to release {target}")


def finish(
    ctx: Context,
    paths: DeployPaths,
    state: dict[str, Any],
    op: str,
    result: dict[str, Any],
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """After the commit: stop every master of another release, prune, clear the record."""
    runtime = runtime or runtime_for(state)
    target = state["release"]
    for pid, version in procs.masters(paths).items():
        if version != target:
            old_release = paths.release(version) if version else paths.release(target)
            ctx.say(f"stopping release {version} (pid {pid}) gracefully")
            runtime.stop_master(paths, pid, graceful_of(old_release), ctx)
            if version:
                remove_tree(paths.public_flag(version))
    runtime.settle(paths, ctx)
    journal.begin(paths, state, op, "prune")
    result["pruned"] = releases.prune(paths, state, ctx.say)
    releases.sweep_orphans(paths, state, ctx.say)
    result["runtimes_removed"] = venv_gc.collect_safely(ctx.root, ctx.say)
    journal.clear(paths, state)
    return result


def undo(
    ctx: Context, paths: DeployPaths, state: dict[str, Any], *, say_why: bool = True, runtime: Runtime | None = None
) -> None:
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


def _restart_switch(
    ctx: Context,
    paths: DeployPaths,
    state: dict[str, Any],
    target: str,
    op: str,
    old_pid: int,
    timeout: float,
    result: dict[str, Any],
    runtime: Runtime,
) -> dict[str, Any]:
    """Fallback for a master that cannot hand over (started by an older installer): stop, start."""
    old = state["release"]
    journal.begin(paths, state, op, "restart")
    runtime.stop_master(paths, old_pid, graceful_of(paths.release(old)), ctx)
    try:
        pid = runtime.start(ctx, Installed(paths, state, target), timeout)
    except VisionpackError as exc:
        ctx.say(f"release {target} did not start; starting {old} again")
        try:
            runtime.start(ctx, Installed(paths, state, old), timeout)
        except VisionpackError as again:
            undo(ctx, paths, state, runtime=runtime)
            raise release_down(
                f"release {target} did not start ({exc.detail}), and {old} did not start again "
                f"either ({again.detail}); {paths.name} is down: fix the cause, then "
                f"'install.py start {paths.name}'"
            ) from None
        undo(ctx, paths, state, runtime=runtime)
        raise
    commit(ctx, paths, state, target, op)
    result.update(started=True, pid=pid, handed_over=False)
    return finish(ctx, paths, state, op, result, runtime)
