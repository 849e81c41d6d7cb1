"""THE licensing seam of the installer: called before any service of a deploy is started.

Raises LicenseError (exit code 20) with the precise reason when the deploy may not start; the
instance limit is taken by the service master itself (start/gunicorn_conf.py on_starting),
because only a running process can hold a slot.

install.py runs on the system python, which may lack ``cryptography`` (Ed25519) on an offline
server. The deploy's runtime venv always has it (built from the wheelhouse), so the check then
runs there, in a subprocess, with the same code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from ..errors import LicenseError, RuntimeInstallFailed
from . import settings
from .layout import LICENSES_DIR

_CHILD = (
    "import json, sys\n"
    "from visionpack.errors import LicenseError\n"
    "from visionpack.installer.licensecheck import check_in_process\n"
    "try:\n"
    "    verdict = check_in_process(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == '1', sys.argv[5] == '1')\n"
    "    print(json.dumps({'ok': True, 'verdict': verdict}))\n"
    "except LicenseError as e:\n"
    "    print(json.dumps({'ok': False, 'reason': e.reason, 'detail': e.detail}))\n"
)


def crypto_available() -> bool:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: F401
    except ImportError:
        return False
    return True


def check_license(
    root: Path,
    deploy: str,
    service: str,
    runtime_python: Path | None = None,
    replacing: bool = False,
    limit: bool = True,
) -> dict[str, Any]:
    """Raise LicenseError if ``deploy`` (running ``service``) may not start under ``root``.

    ``replacing``: the new master takes over a running master's slot (upgrade, rollback), so
    that instance is not counted against the limit a second time. ``limit`` False (status):
    the license itself only; the verdict then says how many slots are in use
    (``instances_running``) instead of refusing when they are all taken.
    """
    license_dir = Path(root) / LICENSES_DIR
    if crypto_available():
        return check_in_process(license_dir, deploy, service, replacing, limit)
    if runtime_python is None or not Path(runtime_python).exists():
        raise RuntimeInstallFailed(
            "checking the license needs the 'cryptography' module: install the runtime "
            "first (install.py install DEPLOY --stopped) or run install.py with a python that has it"
        )
    package_dir = Path(__file__).resolve().parents[2]
    env = dict(settings.environ(), PYTHONPATH=str(package_dir))
    proc = subprocess.run(
        [
            str(runtime_python),
            "-c",
            _CHILD,
            str(license_dir),
            deploy,
            service,
            "1" if replacing else "0",
            "1" if limit else "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeInstallFailed(f"license check in {runtime_python} failed: {proc.stderr.strip()[-500:]}") from None
    if not out["ok"]:
        raise LicenseError(out["reason"], out["detail"])
    verdict: dict[str, Any] = out["verdict"]
    return verdict


def check_in_process(
    license_dir: Path | str, deploy: str, service: str, replacing: bool = False, limit: bool = True
) -> dict[str, Any]:
    """The verdict for a start, including a pre-check of the machine-wide instance count.

    The master takes its slot itself (the race-free check); this one lets the installer say
    'instance-limit' with exit 20 instead of a failed start.
    """
    from ..licensing import admin, instances

    verdict = admin.check_for_start(license_dir, deploy, service)
    if not limit:
        try:
            in_use: Any = instances.count()
        except LicenseError as exc:  # e.g. a user outside the service group cannot open the slots
            in_use = f"unknown: {exc.detail}"
        return {**verdict.to_dict(), "instances_running": in_use}
    running = instances.count() - (1 if replacing else 0)
    if running >= verdict.instances:
        raise LicenseError(
            "instance-limit",
            f"{running} licensed service instance(s) already run on this machine; "
            f"license {verdict.license_id} allows {verdict.instances}",
        )
    return verdict.to_dict()
