"""Release checks (upgrade/rollback): the rollback target as the installer picks it, kept and
orphan release directories, and one master serving the journal's release."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import procfs, releases  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402
from visionpack.installer import releases as installer_releases  # noqa: E402

STATES = [
    {"release": "1.0.0", "releases": {"1.0.0": {}}},
    {"release": "2.0.0", "releases": {"1.0.0": {}, "2.0.0": {}},
     "history": [{"release": "1.0.0"}, {"release": "2.0.0"}]},
    {"release": "1.0.0", "releases": {"1.0.0": {}, "2.0.0": {}, "3.0.0": {}},
     "history": [{"release": "1.0.0"}, {"release": "2.0.0"}, {"release": "3.0.0"}, {"release": "1.0.0"}]},
    {"release": "3.0.0", "releases": {"1.0.0": {"installed_at": "2026-01-01T00:00:00Z"},
                                      "2.0.0": {"installed_at": "2026-02-01T00:00:00Z"}, "3.0.0": {}}},
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
    state = {"release": "2.0.0", "releases": {"1.0.0": {}, "2.0.0": {}},
             "history": [{"release": "1.0.0"}, {"release": "2.0.0"}]}
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


def test_a_second_master_of_another_release_fails(deploy):
    ctx, d, _ = deploy
    cmd = ["python3", "-c", "import time; time.sleep(60)", "gunicorn", "-c"]
    procs = [subprocess.Popen(cmd + [f"{d.dir}/releases/{v}/start/gunicorn_conf.py"]) for v in ("2.0.0", "1.0.0")]
    try:
        r = releases.masters_check(ctx, d, procfs.all_procs())
        assert r.status == "FAIL" and "2 masters serve this deploy" in r.detail
        assert r.fix == [f"kill {procs[1].pid}  # the ones not running 2.0.0"]
        procs[1].kill()
        procs[1].wait()
        # One snapshot for both verdicts: they differ only in state.json, not in what runs
        # (a CI run once saw the survivor gone from a second /proc read).
        snapshot = procfs.all_procs()
        r = releases.masters_check(ctx, d, snapshot)
        assert r.status == "PASS" and r.detail == "one master, serving release 2.0.0"
        d.state["release"] = "1.0.0"
        r = releases.masters_check(ctx, d, snapshot)
        assert r.status == "FAIL" and r.detail == f"pid {procs[0].pid} serves release 2.0.0 but state.json names 1.0.0"
    finally:
        for p in procs:
            p.kill()
            p.wait()
