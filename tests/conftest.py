"""Shared test vocabulary: the repo paths, a tiny classification bundle, fake engines, clients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "package"
if str(PACKAGE) not in sys.path:
    sys.path.insert(0, str(PACKAGE))


def pytest_collection_modifyitems(config, items):
    # The tier is the directory: tests/unit, tests/integration, tests/e2e (LitServe's convention).
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture
def repo() -> Path:
    return REPO
