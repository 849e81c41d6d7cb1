"""Verification: signature by a known vendor key, then machine, GPU, dates, deploy, service.

The checks run in a fixed order so one license on one machine always gets the same
reason: the envelope and algorithm first, then the key, the signature, and only then is
anything inside the payload believed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import LicenseError
from .fingerprint import Fingerprint
from .license import (
    EXPIRY_WARNING_DAYS,
    MAX_CLOCK_DRIFT,
    License,
    decode_payload,
    format_time,
    key_id as raw_key_id,
    parse_envelope,
)

log = logging.getLogger("visionpack.license")

_MAX_KEY_FILE = 16 * 1024
# A deploy's device as config.py normalises it ("cpu" or "gpu:N").
_GPU_DEVICE = re.compile(r"gpu:(\d+)")


def key_id(public_key: Ed25519PublicKey) -> str:
    """16 hex digits naming a public key: SHA-256 of its raw 32 bytes, truncated."""
    return raw_key_id(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def load_public_key_bytes(data: bytes, name: str = "key") -> Ed25519PublicKey | None:
    """A PEM SubjectPublicKeyInfo or a raw 32-byte Ed25519 key; None if it is neither."""
    if b"PRIVATE KEY" in data:
        # Loud on purpose: the vendor's private key in a package is a total break of licensing.
        log.error("refusing %s: it is a PRIVATE key; only public keys belong in a package", name)
        return None
    if data.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            log.warning("ignoring %s: unreadable PEM", name)
            return None
        if not isinstance(key, Ed25519PublicKey):
            log.warning("ignoring %s: not an Ed25519 key", name)
            return None
        return key
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    return None


def load_public_keys(keys_dir: str | os.PathLike[str]) -> dict[str, Ed25519PublicKey]:
    """Every ``*.pem`` / ``*.pub`` public key in ``keys_dir``, by key id. Missing dir -> {}."""
    keys: dict[str, Ed25519PublicKey] = {}
    base = Path(keys_dir)
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return keys
    for path in entries:
        if path.suffix not in (".pem", ".pub") or not path.is_file():
            continue
        try:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_KEY_FILE + 1)
        except OSError as exc:
            log.warning("ignoring %s: %s", path, exc)
            continue
        if len(data) > _MAX_KEY_FILE:
            continue
        key = load_public_key_bytes(data, str(path))
        if key is not None:
            keys[key_id(key)] = key
    return keys


@dataclass(frozen=True)
class Verdict:
    """A license that passed every check, and what the service may show about it."""

    license_id: str
    customer: str
    expires_at: int
    days_left: int
    instances: int
    deploys: tuple[str, ...] | None
    services: tuple[str, ...] | None
    binding: str
    matched: tuple[str, ...]
    mismatched: tuple[str, ...]
    gpu_index: int | None = None
    expiring_soon: bool = False  # within EXPIRY_WARNING_DAYS; then warnings[0] says so
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for /ready, status and diagnostics."""
        out = asdict(self)
        out["expires_at"] = format_time(self.expires_at)
        out["deploys"] = "*" if self.deploys is None else list(self.deploys)
        out["services"] = "*" if self.services is None else list(self.services)
        for key in ("matched", "mismatched", "warnings"):
            out[key] = list(out[key])
        return out


def verify_envelope(lic_bytes: bytes, keys: Mapping[str, Ed25519PublicKey]) -> License:
    """Authenticate the file: allow-listed algorithm, known key, valid signature; then decode."""
    env = parse_envelope(lic_bytes)
    key = keys.get(env.kid)
    if key is None:
        known = ", ".join(sorted(keys)) or "none installed"
        raise LicenseError(
            "unknown-key", f"license signed by key {env.kid}, not a vendor key this package trusts ({known})"
        )
    try:
        key.verify(env.sig, env.message())
    except InvalidSignature:
        raise LicenseError(
            "bad-signature", f"license signature does not verify with vendor key {env.kid} (file altered?)"
        ) from None
    return decode_payload(env)


def match_machine(lic: License, fp: Fingerprint) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Apply the license's rule; returns (matched, mismatched) or raises wrong-machine/wrong-gpu."""
    matched = tuple(n for n, h in sorted(lic.components.items()) if fp.components.get(n) == h)
    mismatched = tuple(n for n in sorted(lic.components) if n not in matched)
    missing_required = [r for r in lic.required if r not in matched]
    if missing_required or len(matched) < lic.min_match:
        need = f"need {lic.min_match}" + (f", {', '.join(lic.required)} required" if lic.required else "")
        raise LicenseError(
            "wrong-machine",
            f"license is for another machine: {len(matched)} of {len(lic.components)} bound components match "
            f"({need}); differing: {', '.join(mismatched)}",
        )
    if lic.binding.get("type") == "gpu" and fp.gpu_index(lic.binding["uuid_hash"]) is None:
        raise LicenseError(
            "wrong-gpu", f"license is bound to one GPU that this machine does not have ({len(fp.gpus)} GPU(s) found)"
        )
    return matched, mismatched


def check_device(lic: License, fp: Fingerprint, device: str | None) -> None:
    """A license bound to one GPU licenses that GPU: a deploy on ``gpu:N`` must run on it.

    ``device`` is the deploy's ``cpu`` | ``gpu:N`` (None or cpu: nothing to check; a machine-bound
    license lets a deploy use any GPU of the machine). N is nvidia-smi's index, the order of
    ``fp.gpus``; :func:`match_machine` has already made sure the bound GPU is present.
    """
    m = _GPU_DEVICE.fullmatch(device or "")
    if m is None or lic.binding.get("type") != "gpu":
        return
    bound = fp.gpu_index(lic.binding["uuid_hash"])
    if bound != int(m.group(1)):
        raise LicenseError(
            "gpu-not-licensed",
            f"this deploy runs on {device}, but the license is bound to one GPU: gpu:{bound} on this machine "
            f"(nvidia-smi order); set the deploy's device to gpu:{bound}, or ask the vendor for a license "
            f"for this GPU",
        )


def check_issued(lic: License, now: float, drift: int = MAX_CLOCK_DRIFT) -> None:
    if lic.issued_at > now + drift:
        raise LicenseError(
            "issued-in-future",
            f"license issued at {format_time(lic.issued_at)} but the clock says "
            f"{format_time(now)}: fix the system clock (NTP)",
        )


def check_dates(lic: License, now: float, drift: int = MAX_CLOCK_DRIFT) -> None:
    # The same drift as issued_at: a license issued "now" by a vendor whose clock runs a
    # minute ahead must work at once, not after the customer's clock catches up.
    if now + drift < lic.not_before:
        raise LicenseError("not-yet-valid", f"license valid from {format_time(lic.not_before)}")
    if now >= lic.expires_at:
        raise LicenseError("expired", f"license expired at {format_time(lic.expires_at)}")


def check_scope(lic: License, deploy: str | None, service: str | None) -> None:
    if deploy is not None and lic.deploys is not None and deploy not in lic.deploys:
        raise LicenseError(
            "deploy-not-licensed", f"deploy {deploy!r} is not licensed (licensed: {', '.join(lic.deploys)})"
        )
    if service is not None and lic.services is not None and service not in lic.services:
        raise LicenseError(
            "service-not-licensed", f"service {service!r} is not licensed (licensed: {', '.join(lic.services)})"
        )


def verify(
    lic_bytes: bytes,
    keys: Mapping[str, Ed25519PublicKey],
    fingerprint: Fingerprint,
    now: float,
    deploy: str | None = None,
    service: str | None = None,
    device: str | None = None,
) -> Verdict:
    """Full check of one license file's bytes; a Verdict or LicenseError with the precise reason."""
    return evaluate(verify_envelope(lic_bytes, keys), fingerprint, now, deploy, service, device)


def evaluate(
    lic: License,
    fingerprint: Fingerprint,
    now: float,
    deploy: str | None = None,
    service: str | None = None,
    device: str | None = None,
) -> Verdict:
    """Every check after authentication; ``lic`` must come from :func:`verify_envelope`.
    ``device``: the deploy's ``cpu`` | ``gpu:N`` (:func:`check_device`), None when no deploy runs."""
    # A license from the future means the clock is wrong, which makes every later answer suspect.
    check_issued(lic, now)
    matched, mismatched = match_machine(lic, fingerprint)
    check_dates(lic, now)
    check_scope(lic, deploy, service)
    check_device(lic, fingerprint, device)
    left = lic.expires_at - now
    warnings = []
    if left <= EXPIRY_WARNING_DAYS * 86400:
        warnings.append(
            f"license {lic.id} expires in {left / 86400:.1f} days ({format_time(lic.expires_at)}); "
            f"ask the vendor for a renewal and run 'install.py lu FILE'"
        )
    if mismatched:
        warnings.append(
            f"components changed since the license was issued: {', '.join(mismatched)} "
            f"(still {len(matched)} of {len(lic.components)}, need {lic.min_match})"
        )
    gpu_index = fingerprint.gpu_index(lic.binding["uuid_hash"]) if lic.binding.get("type") == "gpu" else None
    return Verdict(
        license_id=lic.id,
        customer=lic.customer,
        expires_at=lic.expires_at,
        days_left=max(0, int(left // 86400)),
        instances=lic.instances,
        deploys=lic.deploys,
        services=lic.services,
        binding=lic.binding["type"],
        matched=matched,
        mismatched=mismatched,
        gpu_index=gpu_index,
        expiring_soon=left <= EXPIRY_WARNING_DAYS * 86400,
        warnings=tuple(warnings),
    )
