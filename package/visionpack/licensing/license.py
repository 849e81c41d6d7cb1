"""The license file format: armoured base64 of a JSON envelope around a signed canonical payload.

::

    -----BEGIN VISIONPACK LICENSE-----
    base64( {"alg":"ed25519","kid":"<16 hex>","payload":"<base64>","sig":"<base64>"} )
    -----END VISIONPACK LICENSE-----

The signature covers ``SIGNING_CONTEXT + payload_bytes`` so a signature made for anything
else with the same key (a request, a future file type) can never validate as a license.
Everything here is pure: no file system, no clock, standard library only (trouble_shooting's
vp_diag loads this file by path to read licenses when the runtime is broken). Every failure is a
:class:`~visionpack.errors.LicenseError`; nothing else may escape :func:`parse`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LicenseError

BEGIN = "-----BEGIN VISIONPACK LICENSE-----"
END = "-----END VISIONPACK LICENSE-----"
SIGNING_CONTEXT = b"visionpack-license/v1\n"
ALLOWED_ALGS = ("ed25519",)
SCHEMA = 1
PRODUCT = "visionpack"
MAX_BYTES = 64 * 1024
# Keygen tolerates 5 minutes between a vendor's clock and the customer's; so do we, both for
# "issued in the future" and for how far the clock may fall behind the high-water mark.
MAX_CLOCK_DRIFT = 300
EXPIRY_WARNING_DAYS = 7

# Stable reason codes: logs, /ready, diagnostics and docs/licensing.md use exactly these.
REASONS = (
    "missing",
    "malformed",
    "unsupported-algorithm",
    "unknown-key",
    "bad-signature",
    "wrong-machine",
    "wrong-gpu",
    "gpu-not-licensed",
    "expired",
    "not-yet-valid",
    "deploy-not-licensed",
    "service-not-licensed",
    "instance-limit",
    "clock-rollback",
    "issued-in-future",
)

_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KID = re.compile(r"[0-9a-f]{16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_COMPONENT = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_PAYLOAD_KEYS = {
    "schema",
    "product",
    "id",
    "customer",
    "deploys",
    "services",
    "instances",
    "binding",
    "components",
    "rule",
    "issued_at",
    "not_before",
    "expires_at",
}


def fail(detail: str) -> LicenseError:
    return LicenseError("malformed", f"malformed license: {detail}")


def key_id(raw_public_key: bytes) -> str:
    """The envelope's ``kid`` of a vendor key: SHA-256 of its raw 32 bytes, truncated to 16 hex digits."""
    return hashlib.sha256(b"visionpack/kid/v1\n" + raw_public_key).hexdigest()[:16]


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string per value, so signatures are stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def parse_time(value: Any, field: str) -> int:
    """Strict ``YYYY-MM-DDTHH:MM:SSZ`` (UTC) -> epoch seconds."""
    if not isinstance(value, str):
        raise fail(f"{field} must be a string")
    m = _ISO.fullmatch(value)
    if not m:
        raise fail(f"{field} must look like 2026-01-31T23:59:59Z")
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    except ValueError:
        raise fail(f"{field} is not a real date") from None
    return int(moment.timestamp())


def b64decode_strict(text: Any, field: str) -> bytes:
    if not isinstance(text, str) or not _B64.fullmatch(text) or len(text) % 4:
        raise fail(f"{field} is not strict base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise fail(f"{field} is not strict base64") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise fail(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise fail(f"non-finite number {name}")


def load_json(data: bytes, field: str) -> Any:
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except LicenseError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail(f"{field} is not valid JSON") from None


@dataclass(frozen=True)
class Envelope:
    """The outer layer: what is signed, by which key, with which algorithm."""

    alg: str
    kid: str
    payload: bytes
    sig: bytes

    def message(self) -> bytes:
        return SIGNING_CONTEXT + self.payload


@dataclass(frozen=True)
class License:
    """A decoded payload. Trust its fields only after :func:`verify.verify_envelope` passed."""

    envelope: Envelope
    id: str
    customer: str
    deploys: tuple[str, ...] | None  # None = every deploy ("*")
    services: tuple[str, ...] | None
    instances: int
    binding: Mapping[str, str]
    components: Mapping[str, str]
    min_match: int
    required: tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    payload: Mapping[str, Any]

    @property
    def kid(self) -> str:
        return self.envelope.kid


def armor(env: Envelope) -> bytes:
    """Serialise an envelope to the armoured file text (76-column base64 lines)."""
    inner = canonical_json(
        {
            "alg": env.alg,
            "kid": env.kid,
            "payload": base64.b64encode(env.payload).decode("ascii"),
            "sig": base64.b64encode(env.sig).decode("ascii"),
        }
    )
    body = base64.b64encode(inner).decode("ascii")
    lines = [body[i : i + 76] for i in range(0, len(body), 76)]
    return ("\n".join([BEGIN, *lines, END]) + "\n").encode("ascii")


def parse_envelope(data: Any) -> Envelope:
    """Unwrap the armour and the envelope; checks the algorithm allow-list, nothing else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise fail("not bytes")
    data = bytes(data)
    if not data.strip():
        raise fail("empty file")
    if len(data) > MAX_BYTES:
        raise fail(f"larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise fail("not ASCII text") from None
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise fail("missing BEGIN/END VISIONPACK LICENSE lines (truncated?)")
    inner = b64decode_strict("".join(lines[1:-1]), "armour body")
    env = load_json(inner, "envelope")
    if not isinstance(env, dict) or set(env) != {"alg", "kid", "payload", "sig"}:
        raise fail("envelope must have exactly alg, kid, payload, sig")
    alg = env["alg"]
    if not isinstance(alg, str):
        raise fail("alg must be a string")
    # Allow-list before anything else touches the signature: an attacker must never get to
    # choose how we verify (the classic "alg: none" downgrade).
    if alg not in ALLOWED_ALGS:
        raise LicenseError(
            "unsupported-algorithm", f"license algorithm {alg[:40]!r} is not accepted (only {', '.join(ALLOWED_ALGS)})"
        )
    kid = env["kid"]
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise fail("kid must be 16 lowercase hex digits")
    payload = b64decode_strict(env["payload"], "payload")
    sig = b64decode_strict(env["sig"], "sig")
    if len(sig) != 64:
        raise fail("ed25519 signature must be 64 bytes")
    return Envelope(alg=alg, kid=kid, payload=payload, sig=sig)


def _names(value: Any, field: str) -> tuple[str, ...] | None:
    if value == "*":
        return None
    if not isinstance(value, list) or not value:
        raise fail(f'{field} must be "*" or a non-empty list of names')
    if not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value) or len(set(value)) != len(value):
        raise fail(f"{field} entries must be unique names of [A-Za-z0-9._-]")
    return tuple(value)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise fail(f"{field} must be an integer in {lo}..{hi}")
    return value


def decode_payload(env: Envelope) -> License:
    """Validate the payload strictly (types, ranges, canonical encoding) into a License."""
    if len(env.payload) == 0:
        raise fail("empty payload")
    p = load_json(env.payload, "payload")
    if not isinstance(p, dict):
        raise fail("payload must be an object")
    if p.get("schema") != SCHEMA or type(p.get("schema")) is not int:
        raise fail(f"unknown schema {str(p.get('schema'))[:20]!r} (this version reads schema {SCHEMA})")
    if set(p) != _PAYLOAD_KEYS:
        missing, extra = sorted(_PAYLOAD_KEYS - set(p)), sorted(set(p) - _PAYLOAD_KEYS)
        raise fail(f"payload keys: missing {missing}, unexpected {extra}")
    if canonical_json(p) != env.payload:
        # One byte string per license: no whitespace or key-order games around the signature.
        raise fail("payload is not canonical JSON")
    if p["product"] != PRODUCT:
        raise fail(f"license is for product {str(p['product'])[:40]!r}")
    lic_id, customer = p["id"], p["customer"]
    if not isinstance(lic_id, str) or not _NAME.fullmatch(lic_id):
        raise fail("id must be a short name")
    if not isinstance(customer, str) or not 0 < len(customer) <= 200 or not customer.isprintable():
        raise fail("customer must be 1..200 printable characters")
    binding = p["binding"]
    if binding == {"type": "machine"} or (
        isinstance(binding, dict)
        and set(binding) == {"type", "uuid_hash"}
        and binding["type"] == "gpu"
        and isinstance(binding["uuid_hash"], str)
        and _HEX64.fullmatch(binding["uuid_hash"])
    ):
        pass
    else:
        raise fail('binding must be {"type":"machine"} or {"type":"gpu","uuid_hash":<hex>}')
    comps = p["components"]
    if (
        not isinstance(comps, dict)
        or not comps
        or not all(
            isinstance(k, str) and _COMPONENT.fullmatch(k) and isinstance(v, str) and _HEX64.fullmatch(v)
            for k, v in comps.items()
        )
    ):
        raise fail("components must map names to 64-hex hashes")
    rule = p["rule"]
    if not isinstance(rule, dict) or set(rule) != {"min_match", "required"}:
        raise fail("rule must have exactly min_match and required")
    min_match = _int(rule["min_match"], "rule.min_match", 1, len(comps))
    required = rule["required"]
    if (
        not isinstance(required, list)
        or not all(isinstance(r, str) and r in comps for r in required)
        or len(set(required)) != len(required)
    ):
        raise fail("rule.required must list bound components")
    issued = parse_time(p["issued_at"], "issued_at")
    not_before = parse_time(p["not_before"], "not_before")
    expires = parse_time(p["expires_at"], "expires_at")
    if expires <= not_before:
        raise fail("expires_at must be after not_before")
    return License(
        envelope=env,
        id=lic_id,
        customer=customer,
        deploys=_names(p["deploys"], "deploys"),
        services=_names(p["services"], "services"),
        instances=_int(p["instances"], "instances", 1, 100000),
        binding=dict(binding),
        components=dict(comps),
        min_match=min_match,
        required=tuple(required),
        issued_at=issued,
        not_before=not_before,
        expires_at=expires,
        payload=p,
    )


def parse(data: bytes) -> License:
    """Decode a license file WITHOUT checking its signature (for inspect and diagnostics).

    Returns a License or raises LicenseError; any other exception is a bug.
    """
    try:
        return decode_payload(parse_envelope(data))
    except LicenseError:
        raise
    except Exception as exc:  # the contract is "LicenseError only"; a crash here is a bug, but still a refusal
        raise fail(f"unreadable ({type(exc).__name__})") from None
