"""The installer's side: change ``<deploy>/data/access.json`` (keys, policies) safely.

data/ survives upgrade, rollback and remove (without --purge), so keys and policies do too.

Every change is read-modify-write under an flock of ``data/.access.lock`` (two ``apikey``
commands at once must not lose one's key), and the new file is written in full under a temporary
name, mode 0640, given to the service user like the rest of data/ (installer/filemodes.py; the
service owns data/, so a root:group owner would buy nothing), and only then renamed over the old
one: a worker never sees a half-written file, nor one it may not read. It is a lock of its own,
not the deploy's: a revocation must not wait for an upgrade.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import ConfigInvalid, UsageError
from ..fsutil import atomic_write, fsync_dir
from .guard import FILE
from .model import POLICIES, SCOPES, AccessState, KeyRecord, key_hash, new_key, utc_now

LOCK = ".access.lock"
STAGED = ".access.json.new"
MODE = 0o640
MAX_NAME = 64
T = TypeVar("T")


def access_file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE


def load(data_dir: Path) -> AccessState:
    """The deploy's access state; defaults when there is no file; ConfigInvalid when it is broken."""
    path = access_file(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AccessState()
    except OSError as exc:
        raise ConfigInvalid(f"cannot read {path}: {exc}") from None
    try:
        return AccessState.from_json(raw)
    except ValueError as exc:
        raise ConfigInvalid(
            f"{path} is not a valid access file ({exc}); fix it, or delete it to go back to "
            f"the default policies with no API keys (the service keeps its last good copy "
            f"meanwhile)"
        ) from None


def save(data_dir: Path, state: AccessState) -> None:
    from ..installer import serviceuser

    data_dir = Path(data_dir)
    staged = data_dir / STAGED
    atomic_write(staged, state.to_json(), mode=MODE)
    serviceuser.chown_for_service(staged)  # before the rename: a worker never meets a file it cannot read
    os.replace(staged, access_file(data_dir))
    fsync_dir(data_dir)


@contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # changes take milliseconds: wait rather than fail
        yield
    finally:
        os.close(fd)


def update(data_dir: Path, change: Callable[[AccessState], tuple[AccessState, T]]) -> T:
    """Apply ``change`` to the current state under the lock, drop expired probe keys, save."""
    with locked(data_dir):
        state = load(data_dir)
        now = time.time()
        state = state.with_keys(tuple(k for k in state.keys if not k.expired(now)))
        new, result = change(state)
        save(data_dir, new)
    return result


def parse_scopes(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--scope infer --scope gallery`` or ``--scope infer,gallery``; default ``infer``."""
    scopes: list[str] = []
    for value in values or ["infer"]:
        for part in value.split(","):
            part = part.strip()
            if part not in SCOPES:
                raise UsageError(f"unknown scope {part!r}; the scopes are {', '.join(SCOPES)}")
            if part not in scopes:
                scopes.append(part)
    return tuple(scopes)


def check_name(name: str) -> str:
    if len(name) > MAX_NAME or not name.isprintable():
        raise UsageError(f"a key name is at most {MAX_NAME} printable characters, got {name[:80]!r}")
    return name


def create_key(
    data_dir: Path, scopes: Sequence[str], name: str = "", expires_in: float | None = None
) -> tuple[str, KeyRecord]:
    """(the key, its record); the key itself is returned here once and stored nowhere."""
    key = new_key()
    expires_at = None
    if expires_in is not None:
        expires_at = datetime.fromtimestamp(time.time() + expires_in, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def change(state: AccessState) -> tuple[AccessState, KeyRecord]:
        taken = {k.id for k in state.keys}
        kid = secrets.token_hex(4)
        while kid in taken:
            kid = secrets.token_hex(4)
        rec = KeyRecord.from_dict(
            {
                "id": kid,
                "name": name,
                "scopes": list(scopes),
                "sha256": key_hash(key),
                "created_at": utc_now(),
                "expires_at": expires_at,
            }
        )
        return state.with_key(rec), rec

    return key, update(data_dir, change)


def revoke_key(data_dir: Path, key_id: str) -> tuple[KeyRecord, bool]:
    """(the record, whether it was revoked before); UsageError for an unknown id."""

    def change(state: AccessState) -> tuple[AccessState, tuple[KeyRecord, bool]]:
        rec = state.key(key_id)
        if rec is None:
            known = ", ".join(k.id for k in state.keys) or "none"
            raise UsageError(f"no API key with id {key_id!r} (known ids: {known}); 'install.py apikey list' shows them")
        if rec.revoked:
            return state, (rec, True)
        done = replace(rec, revoked=True, revoked_at=utc_now())
        return state.with_keys(tuple(done if k.id == key_id else k for k in state.keys)), (done, False)

    return update(data_dir, change)


def remove_key(data_dir: Path, key_id: str) -> None:
    """Delete a record outright (the installer's probe keys only; operators revoke)."""
    update(data_dir, lambda s: (s.with_keys(tuple(k for k in s.keys if k.id != key_id)), None))


def set_policy(data_dir: Path, scope: str, policy: str) -> str:
    """Set one scope's policy; returns the previous one."""
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}; the scopes are {', '.join(SCOPES)}")
    if policy not in POLICIES:
        raise UsageError(f"unknown policy {policy!r}; the policies are {', '.join(POLICIES)}")
    return update(data_dir, lambda s: (s.with_policy(scope, policy), s.policies[scope]))
