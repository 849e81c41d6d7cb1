"""THE licensing seam of the installer: called before any service of a deploy is started.

The licensing package (visionpack.licensing) fills this in; until then it accepts everything.
It must raise a visionpack.errors.LicenseError subclass (exit code 20) to refuse a start.
"""

from __future__ import annotations

from pathlib import Path


def check_license(root: Path, deploy: str, service: str) -> None:
    """Raise LicenseError if ``deploy`` (running ``service``) may not start under ``root``."""
    return None
