"""fingerprint [--out FILE] [--diff LICENSE] and lu|licenseupdate [FILE]: the operator's licensing.

``lu`` verifies the new license completely (signature, this machine, dates) before it replaces
``<ROOT>/licenses/license.lic`` atomically (the old one stays as ``license.lic.prev``); running
services pick it up at their next request, without a restart. A bad file changes nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import LicenseError, RuntimeInstallFailed, UsageError
from ...fsutil import atomic_write
from .. import filemodes, serviceuser, settings, venvs
from ..context import Context
from ..journal import checkpoint
from ..licensecheck import crypto_available

LICENSE_NAME = "license.lic"


def _admin(ctx: Context) -> ModuleType:
    """The licensing helpers; re-runs this command in the runtime venv if 'cryptography' is missing.

    The system python of an offline server may lack it; the runtime venv is built offline from
    the package's own wheelhouse and always has it.
    """
    if not crypto_available():
        if settings.reexecuted():
            raise RuntimeInstallFailed("the runtime venv has no 'cryptography'; rebuild it (remove <root>/.runtime)")
        venv = venvs.ensure(ctx.root, ctx.source, say=ctx.say)
        python = str(venvs.python_of(venv))
        script = str(ctx.source.package_dir / "Install" / "install.py")
        sys.stdout.flush()
        os.execve(python, [python, script, *sys.argv[1:]], {**settings.environ(), settings.REEXEC_ENV: "1"})
    from ...licensing import admin

    return admin


def fingerprint(ctx: Context, out: str | None, diff: str | None) -> dict[str, Any]:
    admin = _admin(ctx)
    if diff:
        rows = admin.diff_report(diff, _keys_dir_for_reading(ctx))
        for row in rows:
            need = " (required)" if row["required"] else ""
            ctx.say(f"{row['component']:<14} {row['status']}{need}")
        return {"license": diff, "components": rows}
    path = Path(out or "fingerprint-request.json")
    request = admin.write_request(path)
    present = sorted(k for k, v in request.get("components", {}).items() if v)
    ctx.say(f"wrote {path} ({len(present)} components: {', '.join(present)})")
    ctx.say("send this file to the vendor; install the license you get back with 'install.py lu FILE'")
    return {"request": str(path), "components": present}


def lu(ctx: Context, file: str | None) -> dict[str, Any]:
    admin = _admin(ctx)
    new = Path(file) if file else ctx.source.licenses / LICENSE_NAME
    if not new.is_file():
        raise UsageError(f"no license file at {new}; pass the file the vendor sent: install.py lu FILE")
    pubs = sorted(ctx.source.licenses.glob("*.pub")) if ctx.source.licenses.is_dir() else []
    with tempfile.TemporaryDirectory(prefix="visionpack-keys-") as tmp:
        # Verify against the keys already installed plus this package's, without installing
        # the package's keys until the license has passed: a failed lu changes nothing.
        keys = Path(tmp)
        for src in list(ctx.root.licenses.glob("*.pub")) + pubs:
            shutil.copyfile(src, keys / src.name)
        ctx.root.licenses.mkdir(parents=True, exist_ok=True)
        # setgid to the service group before the new file is written: it is readable by the
        # running services from the instant it is renamed in (gate.py re-reads it).
        filemodes.secure_licenses(ctx.root, serviceuser.ensure(ctx.say))
        # lu's steps have no journal: each write is atomic, so a kill leaves the old license or
        # the new one, both verified. The kill points let the crash tests prove that.
        checkpoint("lu", "verify")
        verdict = admin.install_license(new, ctx.root.licenses, keys)
        checkpoint("lu", "installed")
    for pub in pubs:
        atomic_write(ctx.root.licenses / pub.name, pub.read_bytes(), mode=0o640)
    checkpoint("lu", "keys")
    filemodes.secure(ctx.root, ctx.say)  # root:<service group> 0640: the services read it, nobody else
    info: dict[str, Any] = verdict.to_dict()
    ctx.say(
        f"License update successfully: {info.get('license_id')} for {info.get('customer')}, "
        f"{info.get('days_left')} days left; running services use it from their next request"
    )
    return info


def _keys_dir_for_reading(ctx: Context) -> Path:
    if any(ctx.root.licenses.glob("*.pub")):
        return ctx.root.licenses
    if ctx.source.licenses.is_dir() and any(ctx.source.licenses.glob("*.pub")):
        return ctx.source.licenses
    raise LicenseError("unknown-key", "no vendor public key in the install root or the package's licenses/")
