"""What ``<deploy>/data/access.json`` holds, and the one access decision made from it.

Schema 1::

    {"schema": 1,
     "policies": {"infer": "open", "gallery": "loopback", "ops": "loopback"},
     "keys": [{"id": "3f9a1c2b", "name": "crm", "scopes": ["infer"], "sha256": "<64 hex>",
               "created_at": "2025-01-01T00:00:00Z", "revoked": false, "revoked_at": null,
               "expires_at": null}]}

Pure data and pure functions: no file IO here (store.py writes, guard.py reads in the service),
so the decision table is unit-tested without a file system or a server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import AccessTokenInvalid, NoPermission

SCHEMA = 1
SCOPES = ("infer", "gallery", "ops")
POLICIES = ("open", "loopback", "key")
# Inference stays open so EasyDL/PaddleX clients work unchanged; what changes data or shows
# the license and paths answers this machine only until the operator says otherwise.
DEFAULT_POLICIES: Mapping[str, str] = {"infer": "open", "gallery": "loopback", "ops": "loopback"}
KEY_PREFIX = "vpk_"
# A presented credential longer than this is refused unhashed: real keys are 47 characters.
MAX_KEY_CHARS = 256
_ID = re.compile(r"^[0-9a-f]{8}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def new_key() -> str:
    """A fresh API key: 32 random bytes (256 bits), URL-safe so it fits a query parameter."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    # One round of SHA-256 is the right hash here, unlike for passwords: a key is 256 random
    # bits, so there is no dictionary to try and slow hashing (bcrypt, scrypt) would buy nothing
    # but milliseconds on every request.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a UTC time string")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO time") from None


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    sha256: str
    created_at: str
    revoked: bool = False
    revoked_at: str | None = None
    # Set only on the installer's own short-lived probe keys (probe.py).
    expires_at: str | None = None
    _expires: float | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Any) -> KeyRecord:
        if not isinstance(d, dict):
            raise ValueError("each key must be an object")
        kid = d.get("id")
        if not isinstance(kid, str) or not _ID.match(kid):
            raise ValueError(f"key id {kid!r} is not 8 lowercase hex digits")
        scopes = d.get("scopes")
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            raise ValueError(f"key {kid}: scopes must be a non-empty list of {', '.join(SCOPES)}")
        digest = d.get("sha256")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ValueError(f"key {kid}: sha256 must be 64 lowercase hex digits")
        name, created, revoked = d.get("name", ""), d.get("created_at"), d.get("revoked", False)
        if not isinstance(name, str) or not isinstance(created, str) or not isinstance(revoked, bool):
            raise ValueError(f"key {kid}: name and created_at must be strings, revoked true or false")
        revoked_at = d.get("revoked_at")
        if revoked_at is not None and not isinstance(revoked_at, str):
            raise ValueError(f"key {kid}: revoked_at must be a string or null")
        expires_at = d.get("expires_at")
        return cls(
            kid,
            name,
            tuple(dict.fromkeys(scopes)),
            digest,
            created,
            revoked,
            revoked_at,
            expires_at,
            _epoch(expires_at, f"key {kid}: expires_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "sha256": self.sha256,
            "created_at": self.created_at,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at,
            "expires_at": self.expires_at,
        }

    def public(self, now: float | None = None) -> dict[str, Any]:
        """What ``apikey list`` shows: everything but the hash."""
        d = self.to_dict()
        del d["sha256"]
        d["active"] = self.active(now)
        return d

    def expired(self, now: float | None = None) -> bool:
        return self._expires is not None and (time.time() if now is None else now) >= self._expires

    def active(self, now: float | None = None) -> bool:
        return not self.revoked and not self.expired(now)


@dataclass(frozen=True)
class AccessState:
    policies: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    keys: tuple[KeyRecord, ...] = ()

    def __post_init__(self) -> None:
        # A scope the file does not name has its default policy.
        object.__setattr__(self, "policies", {**DEFAULT_POLICIES, **self.policies})

    @classmethod
    def from_json(cls, text: str | bytes) -> AccessState:
        """Parse and validate; ValueError naming what is wrong."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise ValueError(f"not an access file of schema {SCHEMA}")
        pol = doc.get("policies", {})
        if not isinstance(pol, dict):
            raise ValueError("policies must be an object")
        for scope, policy in pol.items():
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r} in policies (known: {', '.join(SCOPES)})")
            if policy not in POLICIES:
                raise ValueError(f"policy of {scope} is {policy!r}, not one of {', '.join(POLICIES)}")
        raw_keys = doc.get("keys", [])
        if not isinstance(raw_keys, list):
            raise ValueError("keys must be a list")
        keys = tuple(KeyRecord.from_dict(k) for k in raw_keys)
        if len({k.id for k in keys}) != len(keys):
            raise ValueError("two keys share an id")
        return cls(pol, keys)

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "schema": SCHEMA,
                    "policies": {s: self.policies[s] for s in SCOPES},
                    "keys": [k.to_dict() for k in self.keys],
                },
                indent=2,
            )
            + "\n"
        )

    def match(self, presented: str) -> KeyRecord | None:
        """The record whose hash matches ``presented``, revoked or not; None if none does.

        Every stored hash is compared, each in constant time, so the answer's timing says
        nothing about how much of a hash a guess got right.
        """
        digest = key_hash(presented)
        found = None
        for rec in self.keys:
            if hmac.compare_digest(rec.sha256, digest):
                found = rec
        return found

    def key(self, key_id: str) -> KeyRecord | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def with_policy(self, scope: str, policy: str) -> AccessState:
        return replace(self, policies={**self.policies, scope: policy})

    def with_key(self, rec: KeyRecord) -> AccessState:
        return replace(self, keys=self.keys + (rec,))

    def with_keys(self, keys: tuple[KeyRecord, ...]) -> AccessState:
        return replace(self, keys=keys)


def is_loopback(peer: str | None) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x; anything unparsable is not loopback."""
    if not peer:
        return False
    try:
        ip = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass(frozen=True)
class Grant:
    """Why a request was let in: ``via`` open | loopback | key, and the key's id for the log."""

    scope: str
    via: str
    key_id: str | None = None


def decide(state: AccessState, scope: str, peer: str | None, presented: str | None, now: float | None = None) -> Grant:
    """The access decision for one request; AccessTokenInvalid (110) or NoPermission (6) if refused.

    ``open`` checks no credential at all (a wrong key is not even looked at); ``loopback`` lets
    this machine in without one and checks everyone else's; ``key`` checks everyone's.
    """
    policy = state.policies.get(scope, "key")  # an unknown scope fails closed
    if policy == "open":
        return Grant(scope, "open")
    if policy == "loopback" and is_loopback(peer):
        return Grant(scope, "loopback")
    if not presented:
        raise AccessTokenInvalid("missing", f"this route needs an API key with the '{scope}' scope")
    if len(presented) > MAX_KEY_CHARS:
        raise AccessTokenInvalid("unknown")
    rec = state.match(presented)
    if rec is None:
        raise AccessTokenInvalid("unknown")
    if rec.revoked:
        raise AccessTokenInvalid("revoked", key_id=rec.id)
    if rec.expired(now):
        raise AccessTokenInvalid("expired", key_id=rec.id)
    if scope not in rec.scopes:
        raise NoPermission(scope, key_id=rec.id)
    return Grant(scope, "key", rec.id)
