"""What vp_diag checks of a license beyond the package's own parser (no Ed25519: that needs the runtime).

The license format, its reason codes and time limits, the fingerprint and the clock mark are
the package's own modules (``licensing.license``, ``licensing.fingerprint``,
``licensing.clock``), loaded by path with the standard library alone (shared.py). What
``licensing.verify`` does with ``cryptography`` is mirrored here with the standard library: the
key id of each public key file (``license.key_id`` of its raw 32 bytes) and the matching rule,
per component; the tests hold both to agreeing with the runtime's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from pathlib import Path
from typing import Any

from . import shared

# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key is the 32 bytes after it.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


def candidates(package: Path | None, diag_dir: Path, releases: list[Path]) -> list[Path]:
    """Where the licensing modules are taken from: the deploys' releases first (their fingerprint
    and clock mark are what the services compute), then this tool's own package."""
    return [r / "package" / "visionpack" for r in releases] + shared.own_package(package, diag_dir)


def raw_public_key(data: bytes) -> bytes | None:
    """32 raw bytes of a PEM SubjectPublicKeyInfo or raw Ed25519 key file; None otherwise."""
    if b"PRIVATE KEY" in data:
        return None
    text = data.strip()
    if text.startswith(b"-----BEGIN PUBLIC KEY-----"):
        body = b"".join(ln.strip() for ln in text.splitlines()[1:-1])
        try:
            der = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
        return der[len(_ED25519_SPKI) :] if der.startswith(_ED25519_SPKI) and len(der) == 44 else None
    return data if len(data) == 32 else None


def key_ids(licmod: Any, keys_dir: Path) -> dict[str, str]:
    """kid -> file name of every public key in ``keys_dir`` (*.pub, *.pem)."""
    out: dict[str, str] = {}
    for path in sorted(list(keys_dir.glob("*.pub")) + list(keys_dir.glob("*.pem"))):
        try:
            raw = raw_public_key(path.read_bytes()[:16384])
        except OSError:
            continue
        if raw is not None:
            out[licmod.key_id(raw)] = path.name
    return out


def match(payload: dict[str, Any], components: dict[str, str | None]) -> dict[str, Any]:
    """The licensing matching rule, per component, with its verdict."""
    bound = payload.get("components") or {}
    rule = payload.get("rule") or {}
    rows = []
    matched, changed = [], []
    for name in sorted(bound):
        mine = components.get(name)
        if mine is None:
            status = "absent"
        elif hmac.compare_digest(mine, str(bound[name])):
            status = "match"
            matched.append(name)
        else:
            status = "mismatch"
        if status != "match":
            changed.append(name)
        rows.append({"component": name, "status": status, "required": name in (rule.get("required") or [])})
    need = int(rule.get("min_match") or 0)
    missing_required = [n for n in (rule.get("required") or []) if n not in matched]
    ok = len(matched) >= need and not missing_required
    return {
        "rows": rows,
        "matched": matched,
        "changed": changed,
        "min_match": need,
        "missing_required": missing_required,
        "ok": ok,
    }
