"""Where the repository's parts are, for a test at any depth (imported as ``tests.paths``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "package"
TROUBLE_SHOOTING = REPO / "trouble_shooting"


def _seeds() -> Path:
    """The product's seed documents (../shared/seeds beside the project). A clone elsewhere (a CI
    scratch copy) finds them at the workspace's fixed place instead."""
    for base in (REPO.parent / "shared", Path("/work/shared")):
        if (base / "seeds").is_dir():
            return base / "seeds"
    return REPO.parent / "shared" / "seeds"


SEEDS = _seeds()
