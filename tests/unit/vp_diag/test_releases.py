"""Release checks (upgrade/rollback): the rollback target as the installer picks it, kept and
orphan release directories (one master serving the journal's release, with real processes:
tests/integration/vp_diag/test_diag_releases.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from visionpack.installer import releases as installer_releases  # noqa: E402
from vp_diag import releases  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402

STATES = [
    {"release": "1.0.0", "releases": {"1.0.0": {}}},
    {
        "release": "2.0.0",
        "releases": {"1.0.0": {}, "2.0.0": {}},
        "history": [{"release": "1.0.0"}, {"release": "2.0.0"}],
    },
    {
        "release": "1.0.0",
        "releases": {"1.0.0": {}, "2.0.0": {}, "3.0.0": {}},
        "history": [{"release": "1.0.0"}, {"release": "2.0.0"}, {"release": "3.0.0"}, {"release": "1.0.0"}],
    },
    {
        "release": "3.0.0",
        "releases": {
            "1.0.0": {"installed_at": "2026-01-01T00:00:00Z"},
            "2.0.0": {"installed_at": "2026-02-01T00:00:00Z"},
            "3.0.0": {},
        },
    },
    {"release": "2.0.0", "releases": {"2.0.0": {}, "1.0.0": {}}, "history": [{"release": "0.9.0"}]},
]


@pytest.mark.parametrize("state", STATES)
def test_previous_is_what_rollback_picks(state):
    assert releases.previous(state) == installer_releases.previous(state)


def make_release(d: Path, version: str, runtime: Path) -> None:
    rel = d / "releases" / version
    for f in releases.NEEDED:
        (rel / f).parent.mkdir(parents=True, exist_ok=True)
        (rel / f).write_text("{}" if f.endswith(".json") else "")
    (rel / "release.json").write_text(f'{{"runtime": "{runtime}"}}')


@pytest.fixture
def deploy(tmp_path):
    runtime = tmp_path / ".runtime" / "k"
    (runtime / "bin").mkdir(parents=True)
    (runtime / "bin" / "python").write_text("")
    d = tmp_path / "d"
    make_release(d, "1.0.0", runtime)
    make_release(d, "2.0.0", runtime)
    state = {
        "release": "2.0.0",
        "releases": {"1.0.0": {}, "2.0.0": {}},
        "history": [{"release": "1.0.0"}, {"release": "2.0.0"}],
    }
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    return ctx, Deploy(root=tmp_path, name="d", state=state), runtime


def test_complete_rollback_target_passes(deploy):
    ctx, d, _ = deploy
    assert releases.rollback_check(ctx, d).detail == "rollback would go to 1.0.0 (complete, runtime present)"
    assert releases.kept_check(ctx, d).status == "PASS"


def test_rollback_target_without_its_runtime_warns(deploy):
    ctx, d, runtime = deploy
    (runtime / "bin" / "python").unlink()
    r = releases.rollback_check(ctx, d)
    assert r.status == "WARN" and r.lines == [f"1.0.0's runtime {runtime} is gone"]


def test_orphan_release_dir_warns_with_its_removal(deploy):
    ctx, d, runtime = deploy
    make_release(d.dir, "0.5.0", runtime)
    r = releases.kept_check(ctx, d)
    assert r.status == "WARN" and f"rm -rf {d.dir / 'releases' / '0.5.0'}" in r.fix
