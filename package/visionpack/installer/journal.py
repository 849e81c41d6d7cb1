"""state.json: what is installed, what should run, and which operation is half done.

The operation record is written *before* each step and cleared in the same atomic write that
commits the result, so a killed installer always leaves a record saying where it stopped.
:func:`decide` turns such a record into what the next invocation must do; it is pure so the
decisions are unit-tested without a disk.

Schema 2 (this installer) names the deploy's runtime kind ``runtime_kind`` ("process" |
"docker") and each kept release's venv ``releases[v]["venv"]``; schema 1 called both
``runtime``. :func:`load` migrates a schema-1 file when it reads it (:func:`migrate`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigInvalid, OperationLocked
from ..fsutil import atomic_write
from . import settings
from .layout import DeployPaths

SCHEMA = 2


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load(paths: DeployPaths) -> dict[str, Any] | None:
    """The journal in this installer's schema, or None when the deploy is not installed (no state.json)."""
    state = _read(paths)
    if state is not None and migrate(state):
        _write_migrated(paths)
    return state


def _read(paths: DeployPaths) -> dict[str, Any] | None:
    try:
        text = paths.state.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except ValueError as exc:
        # atomic_write never leaves a torn file, so this is damage from outside; say so, don't guess.
        raise ConfigInvalid(
            f"{paths.state} is not valid JSON ({exc}); restore it or remove the deploy with --purge"
        ) from None
    if not isinstance(state, dict):
        raise ConfigInvalid(f"{paths.state} must hold a JSON object")
    return state


def migrate(state: dict[str, Any]) -> bool:
    """Bring a state an older installer wrote to :data:`SCHEMA`, in place; whether anything changed."""
    changed = False
    if "runtime" in state:  # schema 1: the runtime kind
        kind = state.pop("runtime")
        if kind is not None:
            state.setdefault("runtime_kind", kind)
        changed = True
    for info in (state.get("releases") or {}).values():
        if isinstance(info, dict) and "runtime" in info:  # schema 1: the release's venv
            venv = info.pop("runtime")
            info.setdefault("venv", venv)
            changed = True
    if not isinstance(state.get("schema"), int) or state["schema"] < SCHEMA:
        state["schema"] = SCHEMA
        changed = True
    return changed


def _write_migrated(paths: DeployPaths) -> None:
    """Write the migrated state.json back (atomically), when no installer holds the deploy lock.

    A holder (another installer, or this one: flock conflicts across open files of one
    process too) saves the new schema itself at its next write, so skipping loses nothing;
    taking the lock keeps this write from replacing a newer state. Re-read under the lock:
    the file may have changed since it was read. A reader without write access (an operator's
    ``status``) keeps the migrated state in memory only.
    """
    try:
        fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        state = _read(paths)
        if state is not None and migrate(state):
            atomic_write(paths.state, _dump(state))
    except (OSError, ConfigInvalid):
        pass  # locked, unwritable or damaged meanwhile: the next locked save writes schema 2
    finally:
        os.close(fd)  # releases the flock if we took it


def _dump(state: dict[str, Any]) -> str:
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def new_state(deploy: str, service: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "deploy": deploy,
        "service": service,
        "release": None,
        "releases": {},
        "desired": "stopped",
        "host": None,
        "port": None,
        "workers": None,
        "operation": None,
        "updated_at": now(),
    }


def save(paths: DeployPaths, state: dict[str, Any]) -> None:
    state["updated_at"] = now()
    atomic_write(paths.state, _dump(state))


# Crash tests SIGKILL the installer right after a step is journaled (op:step, or op:point of
# a checkpoint()), named by settings.KILL_ENV; unset it does nothing, and services never see it
# (procs.service_env drops every VISIONPACK_* variable).
_KEPT = ("release", "from", "candidate", "old_pid", "built", "purge")


def checkpoint(op: str, point: str) -> None:
    """A kill point for the crash tests; inert unless VISIONPACK_TEST_KILL_AT names it."""
    if settings.kill_point() == f"{op}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def begin(paths: DeployPaths, state: dict[str, Any], op: str, step: str, **extra: Any) -> None:
    """Record that ``op`` is about to run ``step``; keeps started_at and op details across steps."""
    current = state.get("operation") or {}
    started = current.get("started_at") if current.get("op") == op else None
    record = {"op": op, "step": step, "started_at": started or now(), "pid": os.getpid()}
    for key in _KEPT:
        if key in current and current.get("op") == op:
            record[key] = current[key]
    record.update(extra)
    state["operation"] = record
    save(paths, state)
    checkpoint(op, step)


def clear(paths: DeployPaths, state: dict[str, Any]) -> None:
    state["operation"] = None
    save(paths, state)


@dataclass(frozen=True)
class Recovery:
    action: str  # "none" | "undo-install" | "complete-remove" | "clear" | "undo-switch" | "complete-switch"
    op: dict[str, Any] | None
    reason: str


def decide(state: dict[str, Any] | None) -> Recovery:
    """What to do about an operation a killed installer left behind."""
    state = state or {}
    op = state.get("operation")
    if not op:
        return Recovery("none", None, "")
    kind, step = op.get("op"), op.get("step")
    where = f"an interrupted '{kind}' (stopped at step '{step}', started {op.get('started_at')}, pid {op.get('pid')})"
    if kind == "install":
        if op.get("release") and state.get("release") == op.get("release"):
            # The commit write sets the release and clears the record together, so this only
            # happens if state.json was edited by hand; the install is complete.
            return Recovery("clear", op, f"{where} had already committed release {op['release']}")
        return Recovery("undo-install", op, f"{where} never committed; undoing it")
    if kind in ("upgrade", "rollback"):
        # The commit is the state.json write that makes op.release the release; before it the
        # old release still serves (it is stopped only after), so going back is always safe.
        if op.get("release") and state.get("release") == op.get("release"):
            return Recovery("complete-switch", op, f"{where} had switched to {op['release']}; finishing it")
        return Recovery(
            "undo-switch",
            op,
            f"{where} had not switched to {op.get('release')}; undoing it, {state.get('release')} stays",
        )
    if kind == "remove":
        # Removal has no way back once files are going; finishing it is the only consistent end.
        return Recovery("complete-remove", op, f"{where}; finishing the removal")
    # start/stop/restart change no files: the desired state is already recorded and the
    # processes are what they are; status and the next start/stop reconcile them.
    return Recovery("clear", op, f"{where}; nothing on disk to repair")


@contextmanager
def deploy_lock(paths: DeployPaths) -> Iterator[None]:
    """Exclusive per-deploy lock; a second installer fails at once instead of interleaving."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                holder = _read_holder(fd)
                raise OperationLocked(f"deploy {paths.name!r} is locked by another install.py{holder}") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid else ""
