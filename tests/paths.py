"""Where the repository's parts are, for a test at any depth (imported as ``tests.paths``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "package"
TROUBLE_SHOOTING = REPO / "trouble_shooting"
