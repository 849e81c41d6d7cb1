#!/usr/bin/env python3
"""The vendor's licensing tool: key generation, issuing licenses from request files, inspection.

This file never ships in a release. It shares the format code with the package by
importing ``visionpack.licensing`` from the sibling ``package/`` directory; that code only
ever handles public keys, so a release directory never needs (or gets) the private key.

    python3 vendor/visionpack_vendor.py keygen --out ~/.config/visionpack-vendor
    python3 vendor/visionpack_vendor.py issue --key KEY --request request.json --out license.lic
    python3 vendor/visionpack_vendor.py inspect license.lic --pub licenses/
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(_REPO / "package"))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from visionpack.errors import LicenseError  # noqa: E402
from visionpack.licensing import fingerprint as fpmod  # noqa: E402
from visionpack.licensing.license import (  # noqa: E402
    PRODUCT,
    SCHEMA,
    Envelope,
    armor,
    canonical_json,
    decode_payload,
    format_time,
    parse_envelope,
    parse_time,
)
from visionpack.licensing.verify import key_id, load_public_key_bytes, load_public_keys, verify_envelope  # noqa: E402

TRIAL_DAYS = 30
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Directory names that belong to what we ship; a private key must never be written below one.
_FORBIDDEN_PARTS = {"package", "licenses", "releases", "original"}


class VendorError(Exception):
    """A refusal of the vendor tool (exit status 2)."""


def _check_key_dir(out: Path) -> None:
    resolved = out.expanduser().resolve()
    bad = _FORBIDDEN_PARTS.intersection(resolved.parts)
    if bad:
        raise VendorError(
            f"refusing to write a private key under {resolved}: '{sorted(bad)[0]}/' is shipped "
            f"to customers; keep the key outside the package, e.g. ~/.config/visionpack-vendor"
        )
    for parent in (resolved, *resolved.parents):
        if (parent / "Install" / "install.py").exists() or (parent / "current").is_symlink():
            raise VendorError(f"refusing to write a private key inside a package or install root ({parent})")


def existing_pair(out: Path) -> tuple[Path, Path] | None:
    """The key pair already in ``out`` (exactly one ``vendor-*.key`` with its ``.pub``), if any."""
    keys = sorted(out.expanduser().glob("vendor-*.key"))
    if len(keys) == 1 and keys[0].with_suffix(".pub").is_file():
        return keys[0], keys[0].with_suffix(".pub")
    return None


def keygen(out: Path) -> tuple[Path, Path]:
    """New Ed25519 key pair in ``out``: ``vendor-<kid>.key`` (0600) and ``vendor-<kid>.pub`` (PEM).

    The public half is named ``.pub`` because that is what the installer copies from a
    package's ``licenses/`` into the install root; its content is ordinary PEM.
    """
    _check_key_dir(out)
    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    priv_path, pub_path = out / f"vendor-{kid}.key", out / f"vendor-{kid}.pub"
    priv_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # O_EXCL: never overwrite an existing key; losing the old one orphans every license it signed.
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(priv_pem)
    os.chmod(priv_path, 0o600)
    pub_path.write_bytes(pub_pem)
    return priv_path, pub_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = Path(path).expanduser().read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise VendorError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise VendorError(f"{path}: not an Ed25519 key")
    return key


def read_request(path: Path) -> dict[str, Any]:
    """Load and check an operator's request file (``install.py fingerprint`` output)."""
    try:
        req = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise VendorError(f"{path}: unreadable request ({exc})") from None
    if not isinstance(req, dict) or req.get("kind") != "visionpack-license-request" or req.get("request_version") != 1:
        raise VendorError(f"{path}: not a visionpack license request (version 1)")
    if req.get("product") != PRODUCT or req.get("fp_version") != fpmod.FP_VERSION:
        raise VendorError(f"{path}: request is for product {req.get('product')!r} fingerprint v{req.get('fp_version')}")
    comps = req.get("components")
    if not isinstance(comps, dict) or not all(
        v is None or (isinstance(v, str) and _HEX64.fullmatch(v)) for v in comps.values()
    ):
        raise VendorError(f"{path}: components must map names to hashes or null")
    gpus = req.get("gpus", [])
    if not isinstance(gpus, list) or not all(isinstance(g, str) and _HEX64.fullmatch(g) for g in gpus):
        raise VendorError(f"{path}: gpus must be a list of hashes")
    return req


def _names(value: str, what: str) -> str | list[str]:
    if value.strip() == "*":
        return "*"
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise VendorError(f"--{what} needs '*' or a comma-separated list")
    return names


def _gpu_hash(spec: str, gpus: Sequence[str]) -> str:
    """--gpu accepts an index into the request's GPUs, their hash, or the raw nvidia-smi UUID."""
    spec = spec.strip()
    if spec.isdigit():
        idx = int(spec)
        if idx >= len(gpus):
            raise VendorError(f"--gpu {idx}: the request lists {len(gpus)} GPU(s)")
        return gpus[idx]
    wanted = spec.lower() if _HEX64.fullmatch(spec.lower()) else fpmod.gpu_hash(spec)
    if wanted not in gpus:
        raise VendorError(f"--gpu {spec}: not one of the request's GPUs")
    return wanted


def build_payload(
    req: dict[str, Any],
    *,
    now: float,
    days: int = TRIAL_DAYS,
    customer: str | None = None,
    deploys: str = "*",
    services: str = "*",
    instances: int = 1,
    gpu: str | None = None,
    min_match: int | None = None,
    require: str | None = None,
    not_before: str | None = None,
    license_id: str | None = None,
) -> dict[str, Any]:
    """The payload for a request; defaults: 30 days, everything licensed, 3-of-N with machine id required."""
    comps = {k: v for k, v in sorted(req["components"].items()) if v is not None}
    if not comps:
        raise VendorError("the request has no hardware components; cannot bind a license")
    if require is None:
        required = ["machine_id"] if "machine_id" in comps else []
    else:
        required = [r.strip() for r in require.split(",") if r.strip()]
    for r in required:
        if r not in comps:
            raise VendorError(f"--require {r}: the request has no such component (has {', '.join(comps)})")
    if min_match is None:
        min_match = min(3, len(comps))
    if not 1 <= min_match <= len(comps):
        raise VendorError(f"--min-match must be 1..{len(comps)} for this request")
    if days < 1 or instances < 1:
        raise VendorError("--days and --instances must be at least 1")
    start = parse_time(not_before, "--not-before") if not_before else int(now)
    binding: dict[str, str] = {"type": "machine"}
    if gpu is not None:
        binding = {"type": "gpu", "uuid_hash": _gpu_hash(gpu, req.get("gpus", []))}
    return {
        "schema": SCHEMA,
        "product": PRODUCT,
        "id": license_id or f"vp-{secrets.token_hex(8)}",
        "customer": customer or req.get("customer_hint") or req.get("hostname_hint") or "trial",
        "deploys": _names(deploys, "deploys"),
        "services": _names(services, "services"),
        "instances": instances,
        "binding": binding,
        "components": comps,
        "rule": {"min_match": min_match, "required": required},
        "issued_at": format_time(now),
        "not_before": format_time(start),
        "expires_at": format_time(start + days * 86400),
    }


def sign(payload: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Armoured license text for ``payload``; the payload is validated with the reader's own rules."""
    body = canonical_json(payload)
    kid = key_id(key.public_key())
    env = Envelope(alg="ed25519", kid=kid, payload=body, sig=b"\0" * 64)
    decode_payload(env)  # never issue something the package would refuse as malformed
    env = Envelope(alg="ed25519", kid=kid, payload=body, sig=key.sign(env.message()))
    return armor(env)


def inspect(data: bytes, pub: Path | None) -> tuple[dict[str, Any], bool]:
    """(report, ok). The report holds the decoded payload and the signature status."""
    env = parse_envelope(data)
    report: dict[str, Any] = {"alg": env.alg, "kid": env.kid}
    try:
        report["payload"] = json.loads(env.payload)
    except ValueError:
        report["payload"] = None
    ok = True
    if pub is None:
        report["signature"] = "not checked (pass --pub KEY.pem or a directory of public keys)"
    else:
        if pub.is_dir():
            keys = load_public_keys(pub)
        else:
            key = load_public_key_bytes(pub.read_bytes(), str(pub))
            keys = {key_id(key): key} if key else {}
        try:
            lic = verify_envelope(data, keys)
            report["signature"] = "valid"
            report["expires_in_days"] = round((lic.expires_at - time.time()) / 86400, 1)
        except LicenseError as exc:
            report["signature"] = f"INVALID: {exc.reason}: {exc.detail}"
            ok = False
    if ok:
        decode_payload(env)  # a validly signed but malformed payload is still an error
    return report, ok


def _write_new(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="visionpack_vendor", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="generate the vendor key pair")
    k.add_argument("--out", required=True, type=Path, help="directory for the key pair (outside any package)")
    k.add_argument("--reuse", action="store_true", help="if --out already holds a key pair, print it and stop")
    i = sub.add_parser("issue", help="issue a license for a request file")
    i.add_argument("--key", required=True, type=Path)
    i.add_argument("--request", required=True, type=Path)
    i.add_argument("--out", required=True, type=Path)
    i.add_argument("--days", type=int, default=TRIAL_DAYS)
    i.add_argument("--customer")
    i.add_argument("--deploys", default="*")
    i.add_argument("--services", default="*")
    i.add_argument("--instances", type=int, default=1)
    i.add_argument("--gpu", help="bind to one GPU: index in the request, its hash, or its GPU-… UUID")
    i.add_argument("--min-match", type=int)
    i.add_argument("--require", help="comma-separated components that must match ('' for none)")
    i.add_argument("--not-before", help="UTC start, e.g. 2026-01-01T00:00:00Z (default: now)")
    s = sub.add_parser("inspect", help="print a license and check its signature")
    s.add_argument("file", type=Path)
    s.add_argument("--pub", type=Path, help="public key file (.pub/.pem) or a directory of them")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "keygen":
            pair = existing_pair(args.out) if args.reuse else None
            if pair is not None:
                _check_key_dir(args.out)
            priv, pub = pair or keygen(args.out)
            print(f"private key: {priv}  (mode 0600; keep it secret and backed up; never ship it)")
            print(f"public key:  {pub}")
            print(f"copy the public key into the package's licenses/ directory: cp {pub} licenses/")
            return 0
        if args.cmd == "issue":
            req = read_request(args.request)
            payload = build_payload(
                req,
                now=time.time(),
                days=args.days,
                customer=args.customer,
                deploys=args.deploys,
                services=args.services,
                instances=args.instances,
                gpu=args.gpu,
                min_match=args.min_match,
                require=args.require,
                not_before=args.not_before,
            )
            data = sign(payload, load_private_key(args.key))
            _write_new(args.out, data)
            print(
                f"issued {payload['id']} for {payload['customer']!r}: {payload['not_before']} .. "
                f"{payload['expires_at']}, {args.out}"
            )
            return 0
        report, ok = inspect(args.file.read_bytes(), args.pub)
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0 if ok else 1
    except LicenseError as exc:
        print(f"error: {exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    except (VendorError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
