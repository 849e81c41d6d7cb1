"""SIGKILL the installer at every step of install, upgrade, rollback and lu, under client load.

``VISIONPACK_TEST_KILL_AT=<op>:<step>`` makes install.py kill itself with SIGKILL right after
journaling that step (journal.begin / journal.checkpoint; inert otherwise). The next
invocation must finish or undo the operation so that the current symlink, state.json and the
one running master agree, no client request fails, and data/ is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    free_port,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    trial_license,
    wheelhouse,
)
from test_installer_upgrade import Load, served_release, v2_tree  # noqa: F401

from visionpack.installer import procs
from visionpack.installer.layout import Root

UPGRADE_STEPS = ["runtime", "release", "start", "prove", "switch", "public-open", "current-switched", "retire", "prune"]
ROLLBACK_STEPS = ["start", "prove", "switch", "public-open", "current-switched", "retire", "prune"]
# Steps before the commit are undone (the old release stays); after it they are finished.
COMMITTED = {"retire", "prune"}


def kill_at(point: str) -> dict:
    return {"VISIONPACK_TEST_KILL_AT": point}


def assert_consistent(src: Path, root: Path, port: int, release: str, *, running: bool = True) -> None:
    d = root / DEPLOY
    state = json.loads((d / "state.json").read_text())
    assert state["operation"] is None and state["release"] == release
    assert os.readlink(d / "current") == f"releases/{release}"
    assert (d / "data" / "gallery.db").read_text() == "precious"
    assert sorted(p.name for p in (d / "releases").iterdir()) == sorted(state["releases"])
    masters = procs.masters(Root(root).deploy(DEPLOY))
    if running:
        assert list(masters.values()) == [release], masters
        assert served_release(port) == release
        st = status_json(src, root)
        assert (st["state"], st["release"], st["pid"]) == ("running", release, next(iter(masters)))
    else:
        assert masters == {}


def installed(src: Path, root: Path, *extra: str) -> int:
    port = free_port()
    proc = run_installer(src, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (root / DEPLOY / "data" / "gallery.db").write_text("precious")
    return port


@pytest.mark.parametrize("step", UPGRADE_STEPS)
def test_upgrade_killed_at_each_step(source_tree, v2_tree, root, step):
    port = installed(source_tree, root)
    with Load(port, threads=2) as load:
        killed = run_installer(
            source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree), env=kill_at(f"upgrade:{step}")
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        st = status_json(source_tree, root)
        assert st["interrupted_operation"]["op"] == "upgrade"
        nxt = run_installer(source_tree, root, "start", DEPLOY)
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert "recovery: an interrupted 'upgrade'" in nxt.stdout
    expected = "1.1.0" if step in COMMITTED else "1.0.0"
    assert ("finishing it" if step in COMMITTED else "undoing it") in nxt.stdout
    assert load.failed == [], load.failed[:3]
    assert_consistent(source_tree, root, port, expected)
    if expected == "1.0.0":  # undone: the same upgrade now goes through
        again = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
        assert again.returncode == 0, again.stdout + again.stderr
        assert_consistent(source_tree, root, port, "1.1.0")


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_rollback_killed_at_each_step(source_tree, v2_tree, root, step):
    port = installed(source_tree, root)
    up = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
    assert up.returncode == 0, up.stdout + up.stderr
    with Load(port, threads=2) as load:
        killed = run_installer(source_tree, root, "rollback", DEPLOY, env=kill_at(f"rollback:{step}"))
        assert killed.returncode == -9, killed.stdout + killed.stderr
        nxt = run_installer(source_tree, root, "start", DEPLOY)
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert "recovery: an interrupted 'rollback'" in nxt.stdout
    expected = "1.0.0" if step in COMMITTED else "1.1.0"
    assert load.failed == [], load.failed[:3]
    assert_consistent(source_tree, root, port, expected)


@pytest.mark.parametrize("step", ["runtime", "release", "switch", "start:spawn", "start:spawned"])
def test_install_killed_at_each_step(source_tree, root, step):
    port = free_port()
    args = ("install", DEPLOY, "--host", "127.0.0.1", "--port", str(port))
    (root / DEPLOY / "data").mkdir(parents=True)
    (root / DEPLOY / "data" / "gallery.db").write_text("precious")
    point = step if ":" in step else f"install:{step}"
    killed = run_installer(source_tree, root, *args, env=kill_at(point))
    assert killed.returncode == -9, killed.stdout + killed.stderr
    if step.startswith("start:"):
        # Committed before the kill: installed, and the next start finishes the job.
        nxt = run_installer(source_tree, root, "start", DEPLOY)
    else:
        nxt = run_installer(source_tree, root, *args)
        assert "undoing it" in nxt.stdout
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert_consistent(source_tree, root, port, "1.0.0")


@pytest.mark.parametrize("step", ["verify", "installed", "keys"])
def test_lu_killed_at_each_step_leaves_a_valid_license(source_tree, root, trial_license, step):
    port = installed(source_tree, root)
    _pub, lic = trial_license
    before = (root / "licenses" / "license.lic").read_bytes()
    renewed = root.parent / "renewed.lic"
    shutil.copy2(lic, renewed)
    with Load(port, threads=2) as load:
        killed = run_installer(source_tree, root, "lu", str(renewed), env=kill_at(f"lu:{step}"))
        assert killed.returncode == -9, killed.stdout + killed.stderr
        st = status_json(source_tree, root)
    assert st["license"]["ok"] is True and st["state"] == "running"
    assert (root / "licenses" / "license.lic").read_bytes() in (before, renewed.read_bytes())
    again = run_installer(source_tree, root, "lu", str(renewed))
    assert again.returncode == 0 and "License update successfully" in again.stdout
    assert load.failed == []
    assert_consistent(source_tree, root, port, "1.0.0")
