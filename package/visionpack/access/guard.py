"""The service's side of access control: this deploy's current access.json, and the check a request passes.

Each worker keeps the parsed file and one ``os.stat`` per request tells it whether the file
changed (its inode, mtime, size and ctime: the installer replaces the file by rename, so every
write is a new inode, and ctime also catches an ownership change). A stat costs about a
microsecond (docs/design.md "API keys"), so a revocation or a policy change applies to the next
request of every worker, without a restart or a signal, and no request fails because of it.

A file that cannot be read or parsed keeps the last good state and is logged once per version
of the file. If there never was a good state (a worker starting over a corrupt file) every scope
is treated as ``key`` with no valid key: a broken file never opens anything.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote_plus

from ..errors import AccessTokenInvalid, NoPermission
from .model import SCOPES, AccessState, Grant, decide

log = logging.getLogger("visionpack.access")

FILE = "access.json"
# Before any good read of a file that exists: fail closed (see the module docstring).
LOCKED = AccessState({s: "key" for s in SCOPES}, ())
_NEVER = object()

# A stat signature, or ("stat-error", errno); Optional, not `| None`: evaluated at run time, on 3.9 too.
Signature = Optional[tuple[object, ...]]


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


class AccessGuard:
    """Per-worker view of one deploy's access.json; thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sig: Any = _NEVER
        self._good = False
        self._state = AccessState()

    @classmethod
    def for_config(cls, cfg: Any) -> AccessGuard:
        """The guard of a service config: ``<data_dir>/access.json``; defaults when no data_dir."""
        data_dir = getattr(cfg, "data_dir", "") or ""
        return cls(Path(data_dir) / FILE if data_dir else None)

    def state(self) -> AccessState:
        if self.path is None:
            return self._state
        try:
            sig: Signature = _signature(os.stat(self.path))
        except FileNotFoundError:
            sig = None
        except OSError as exc:
            sig = ("stat-error", exc.errno)
        if sig != self._sig:
            with self._lock:
                if sig != self._sig:
                    self._reload(sig)
        return self._state

    def _reload(self, sig: Signature) -> None:
        if sig is None:
            if self._sig is not _NEVER:
                log.info("%s is gone: default policies (%s), no API keys", self.path, _describe(AccessState()))
            self._state, self._good, self._sig = AccessState(), True, None
            return
        try:
            # Read through the descriptor we stat, so the signature and the content belong together.
            with open(self.path, "rb") as fh:  # type: ignore[arg-type]
                sig = _signature(os.fstat(fh.fileno()))
                state = AccessState.from_json(fh.read())
        except (OSError, ValueError) as exc:
            self._sig = sig  # log once per version of the file, not once per request
            if self._good:
                log.error("cannot use %s (%s); keeping the last good policies and keys", self.path, exc)
            else:
                self._state = LOCKED
                log.error(
                    "cannot use %s (%s); refusing every scope that is not open until it is fixed "
                    "(every scope needs a key, and no key is valid)",
                    self.path,
                    exc,
                )
            return
        if self._sig is not _NEVER:
            log.info("reloaded %s: %s, %d key(s)", self.path, _describe(state), len(state.keys))
        self._state, self._good, self._sig = state, True, sig

    def authorize(self, scope: str, peer: str | None, presented: str | None) -> Grant:
        """Grant, or AccessTokenInvalid / NoPermission (model.decide) against the current file."""
        return decide(self.state(), scope, peer, presented)


def _describe(state: AccessState) -> str:
    return ", ".join(f"{s} {state.policies[s]}" for s in SCOPES)


def presented_key(headers: Any, args: Any) -> str | None:
    """The credential a request carries, in this order: ``Authorization: Bearer``, ``X-API-Key``,
    the ``access_token`` query parameter (Baidu's). The first one present is used."""
    scheme, _, value = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for candidate in (headers.get("X-API-Key"), args.get("access_token")):
        if candidate and candidate.strip():
            key: str = candidate.strip()
            return key
    return None


def redact_target(target: str) -> str:
    """A request target fit for a log line: the ``access_token`` parameter's value (however its
    name is percent-encoded) becomes ``***``, the rest stays as sent."""
    path, sep, query = target.partition("?")
    if not sep or "token" not in unquote_plus(query):
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        parts.append(f"{name}=***" if unquote_plus(name).strip() == "access_token" else part)
    return f"{path}?{'&'.join(parts)}"


def authorize_request(guard: AccessGuard, scope: str) -> Grant:
    """The check for the current Flask request; reads headers and the query string, never the body."""
    from flask import request

    return guard.authorize(scope, request.environ.get("REMOTE_ADDR"), presented_key(request.headers, request.args))


def log_refusal(logger: logging.Logger, log_id: Any, route: str, err: AccessTokenInvalid | NoPermission) -> None:
    """One line per refusal: log id, route, peer, why and the key's id; never the key itself."""
    from flask import request

    logger.warning(
        "log_id=%s route=%s %s peer=%s reason=%s key_id=%s",
        log_id,
        route,
        err.slug,
        request.environ.get("REMOTE_ADDR") or "-",
        err.reason,
        err.key_id or "-",
    )
