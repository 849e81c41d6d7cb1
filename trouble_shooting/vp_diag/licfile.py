"""What the standard library can check of a license (no Ed25519 here: that needs the runtime).

Mirrors docs/licensing.md: the armour, the envelope, the canonical payload's fields, the key
id (``sha256("visionpack/kid/v1\\n" + raw public key)[:16]``) and the clock mark's HMAC
(secret ``sha256("visionpack/clock/v1\\n" + machine id)``). The fingerprint itself is not
mirrored: ``licensing/fingerprint.py`` is standard-library only, so it is loaded from the
release (or package) by file path, and the tests hold both to agreeing with the runtime's.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import importlib.util
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

BEGIN = "-----BEGIN VISIONPACK LICENSE-----"
END = "-----END VISIONPACK LICENSE-----"
MAX_BYTES = 64 * 1024
MAX_CLOCK_DRIFT = 300
EXPIRY_WARNING_DAYS = 7
MARK_NAMES = ("clock.mark", ".clock.mark.2")
STATE_DIR = Path("/var/lib/visionpack/state")
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key is the 32 bytes after it.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


class Bad(Exception):
    """The file is not a well-formed license; ``reason`` as in licensing's reason codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise Bad("malformed", f"{what} is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Bad("malformed", f"{what} is not valid base64") from None


def parse(data: bytes) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(envelope, payload) of a license file, or Bad."""
    if not data.strip():
        raise Bad("malformed", "empty file")
    if len(data) > MAX_BYTES:
        raise Bad("malformed", f"larger than {MAX_BYTES} bytes")
    try:
        lines = [ln.strip() for ln in data.decode("ascii").strip().splitlines()]
    except UnicodeDecodeError:
        raise Bad("malformed", "not ASCII text") from None
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise Bad("malformed", "missing BEGIN/END VISIONPACK LICENSE lines (truncated?)")
    try:
        env = json.loads(_b64("".join(lines[1:-1]), "armour body"))
    except ValueError:
        raise Bad("malformed", "envelope is not JSON") from None
    if not isinstance(env, dict) or set(env) != {"alg", "kid", "payload", "sig"}:
        raise Bad("malformed", "envelope must have exactly alg, kid, payload, sig")
    if env["alg"] != "ed25519":
        raise Bad("unsupported-algorithm", f"algorithm {str(env['alg'])[:40]!r} is not ed25519")
    try:
        payload = json.loads(_b64(env["payload"], "payload"))
    except ValueError:
        raise Bad("malformed", "payload is not JSON") from None
    if not isinstance(payload, dict):
        raise Bad("malformed", "payload is not a JSON object")
    for key in ("expires_at", "not_before", "issued_at", "components", "rule"):
        if key not in payload:
            raise Bad("malformed", f"payload lacks {key!r}")
    return env, payload


def parse_time(value: Any) -> int:
    try:
        return calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise Bad("malformed", f"bad time {value!r}") from None


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def raw_public_key(data: bytes) -> Optional[bytes]:
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
        return der[len(_ED25519_SPKI):] if der.startswith(_ED25519_SPKI) and len(der) == 44 else None
    return data if len(data) == 32 else None


def key_id(raw: bytes) -> str:
    return hashlib.sha256(b"visionpack/kid/v1\n" + raw).hexdigest()[:16]


def key_ids(keys_dir: Path) -> Dict[str, str]:
    """kid -> file name of every public key in ``keys_dir`` (*.pub, *.pem)."""
    out: Dict[str, str] = {}
    for path in sorted(list(keys_dir.glob("*.pub")) + list(keys_dir.glob("*.pem"))):
        try:
            raw = raw_public_key(path.read_bytes()[:16384])
        except OSError:
            continue
        if raw is not None:
            out[key_id(raw)] = path.name
    return out


def load_fingerprint_module(candidates: List[Path]) -> Any:
    """licensing/fingerprint.py loaded by path (stdlib-only), from the first place that has it."""
    for path in candidates:
        if path.is_file():
            spec = importlib.util.spec_from_file_location("vp_diag_fingerprint", path)
            if spec is None or spec.loader is None:
                continue
            mod = importlib.util.module_from_spec(spec)
            import sys
            sys.modules[spec.name] = mod  # dataclasses resolve annotations through sys.modules
            spec.loader.exec_module(mod)
            return mod
    return None


def match(payload: Dict[str, Any], components: Dict[str, Optional[str]]) -> Dict[str, Any]:
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
    return {"rows": rows, "matched": matched, "changed": changed, "min_match": need,
            "missing_required": missing_required, "ok": ok}


def clock_secret(fp: Any) -> bytes:
    raw = fp.read_machine_id() or fp.read_dmi("product_uuid") or fp.read_disk_serial() or ""
    return hashlib.sha256(b"visionpack/clock/v1\n" + raw.encode("utf-8")).digest()


def read_marks(state_dir: Path, secret: bytes) -> Tuple[Optional[int], List[str]]:
    """(highest verified mark or None, per copy "ok" / "missing" / "bad")."""
    highs, labels = [], []
    for name in MARK_NAMES:
        try:
            data = (state_dir / name).read_bytes()[:4096]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            labels.append("missing")
            continue
        except OSError:
            labels.append("bad")
            continue
        try:
            doc = json.loads(data)
            high = doc["high"]
            mac = hmac.new(secret, f"visionpack-clock/v1|{high}".encode(), hashlib.sha256).hexdigest()
            if set(doc) == {"v", "high", "mac"} and doc["v"] == 1 and type(high) is int \
                    and isinstance(doc["mac"], str) and hmac.compare_digest(doc["mac"], mac):
                highs.append(high)
                labels.append("ok")
                continue
        except (ValueError, KeyError, TypeError):
            pass
        labels.append("bad")
    return (max(highs) if highs else None), labels
