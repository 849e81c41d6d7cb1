"""vp_diag finds docker deploys by state.json's runtime kind, in the schema the installer writes and in
the one an older installer left (``runtime``; the installer migrates it, vp_diag never writes)."""

from __future__ import annotations

import sys

import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag.docker import runtime_kind  # noqa: E402


@pytest.mark.parametrize(
    "state, kind",
    [
        ({"schema": 2, "runtime_kind": "docker"}, "docker"),
        ({"schema": 2, "runtime_kind": "process"}, "process"),
        ({"schema": 1, "runtime": "docker"}, "docker"),
        ({"schema": 1, "runtime": "process"}, "process"),
        ({"schema": 1}, "process"),  # installed before docker deploys existed
        (None, "process"),
    ],
)
def test_runtime_kind_of_either_schema(state, kind):
    assert runtime_kind(state) == kind


@pytest.mark.parametrize(
    "state",
    [
        {"schema": 2, "runtime_kind": "docker"},
        {"schema": 1, "runtime": "docker"},
        {"schema": 1, "runtime": "process"},
        {"schema": 1},
        {"runtime": None},
    ],
)
def test_runtime_kind_agrees_with_the_installers_migration(state):
    """vp_diag never writes state.json, so it reads either schema; the installer's migrate() is the truth."""
    import copy

    from visionpack.installer import journal

    migrated = copy.deepcopy(state)
    journal.migrate(migrated)
    assert runtime_kind(state) == (migrated.get("runtime_kind") or "process")
