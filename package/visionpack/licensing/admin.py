"""Operator-side helpers for the installer: request file, fingerprint diff, license update.

``install.py fingerprint`` -> :func:`write_request`; ``install.py fingerprint --diff FILE``
-> :func:`diff_report`; ``install.py lu FILE`` -> :func:`install_license`; the start seam
-> :func:`check_for_start`; ``status`` / trouble_shooting -> :func:`status`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import LicenseError
from ..fsutil import atomic_write
from . import instances
from .clock import DEFAULT_STATE_DIR, ClockMark
from .fingerprint import Fingerprint, collect
from .gate import LicenseGate
from .license import MAX_BYTES
from .verify import Verdict, check_issued, evaluate, load_public_keys, verify_envelope

LICENSE_NAME = "license.lic"
PREVIOUS_NAME = "license.lic.prev"


def read_license_file(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes (at most MAX_BYTES + 1, so oversize is still reported as malformed)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise LicenseError("missing", f"no license file at {path}") from None
    except IsADirectoryError:
        raise LicenseError("missing", f"{path} is a directory, not a license file") from None
    except OSError as exc:
        raise LicenseError("missing", f"cannot read {path}: {exc.strerror}") from None


def write_request(path: str | os.PathLike[str], customer_hint: str | None = None) -> dict[str, Any]:
    """Collect this machine's fingerprint and write the request file for the vendor; returns it.

    The file holds only salted hashes (no serial numbers or MACs) and is safe to e-mail.
    """
    request = collect().to_request(customer_hint)
    atomic_write(path, json.dumps(request, indent=2, sort_keys=True) + "\n", mode=0o644)
    return request


def diff_report(
    license_path: str | os.PathLike[str], keys_dir: str | os.PathLike[str], fingerprint: Fingerprint | None = None
) -> list[dict[str, Any]]:
    """Per component of this machine vs the license: like EasyDL's ``easyts.py fg``.

    Rows: ``{"component", "status" (match|mismatch|absent|not-bound), "required"}``.
    The license's signature is checked first (raises LicenseError), so the rows never
    describe a forged file.
    """
    lic = verify_envelope(read_license_file(license_path), load_public_keys(keys_dir))
    fp = fingerprint or collect()
    return [{"component": name, "status": status, "required": name in lic.required} for name, status in fp.diff(lic)]


def install_license(
    new_path: str | os.PathLike[str],
    license_dir: str | os.PathLike[str],
    keys_dir: str | os.PathLike[str],
    now: float | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> Verdict:
    """Verify ``new_path`` completely, then make it ``license_dir/license.lic`` atomically.

    Checks signature, key, this machine, GPU, issued/not-before/expiry dates (and the clock
    mark if ``state_dir`` is given), but not the deploy or service: one license file
    serves every deploy. The old file is kept as ``license.lic.prev``. A bad new file
    changes nothing and raises LicenseError with its reason. Running services pick the
    new file up at their next request (see gate.py).
    """
    now = time.time() if now is None else now
    # Verify the bytes we will write, not the path: the file could change between check and copy.
    data = read_license_file(new_path)
    lic = verify_envelope(data, load_public_keys(keys_dir))
    check_issued(lic, now)
    if state_dir is not None:
        ClockMark(state_dir).check(now, floor=lic.issued_at)
    verdict = evaluate(lic, collect(), now)
    target_dir = Path(license_dir)
    target = target_dir / LICENSE_NAME
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        old = target.read_bytes()
    except FileNotFoundError:
        old = None
    if old is not None and old != data:
        atomic_write(target_dir / PREVIOUS_NAME, old, mode=0o644)
    atomic_write(target, data, mode=0o644)
    return verdict


def check_for_start(
    license_dir: str | os.PathLike[str],
    deploy: str,
    service: str,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    device: str | None = None,
) -> Verdict:
    """What a deploy must pass before it starts: the same checks as every request.

    ``license_dir`` holds ``license.lic`` and the vendor public key(s) (``<ROOT>/licenses``).
    The instance limit is not checked here; the service master takes its slot itself
    (``instances.acquire(verdict.instances, ...)``), because only a running process holds one.
    """
    d = Path(license_dir)
    return LicenseGate(d / LICENSE_NAME, d, state_dir, deploy, service, device=device).check()


def status(
    license_dir: str | os.PathLike[str],
    deploy: str | None = None,
    service: str | None = None,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
) -> dict[str, Any]:
    """Never raises: license verdict (or reason), days left, and the running instances."""
    d = Path(license_dir)
    snap = LicenseGate(d / LICENSE_NAME, d, state_dir, deploy, service).snapshot()
    try:
        snap["instances_running"] = instances.holders()
    except LicenseError as exc:
        snap["instances_running"] = f"unavailable: {exc.detail}"
    return snap


def start_instance(
    license_dir: str | os.PathLike[str],
    deploy: str,
    service: str,
    owner_info: dict[str, Any] | None = None,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    device: str | None = None,
) -> tuple[Verdict, instances.Slot]:
    """For a service master at start (e.g. gunicorn's ``on_starting``): check, then take a slot.

    Keep the returned Slot referenced for the life of the process; forked workers inherit
    it. Raises LicenseError (any reason, or ``instance-limit``).
    """
    verdict = check_for_start(license_dir, deploy, service, state_dir, device)
    info = {"deploy": deploy, "service": service, "license": verdict.license_id, **(owner_info or {})}
    return verdict, instances.acquire(verdict.instances, info)
