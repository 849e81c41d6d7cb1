"""state.json, the per-deploy lock, and what a later run does about a killed one."""

from __future__ import annotations

import json
import os

import pytest

from visionpack.errors import ConfigInvalid, OperationLocked
from visionpack.installer import journal, recovery
from visionpack.installer.layout import Root


@pytest.fixture
def paths(tmp_path):
    p = Root(tmp_path).deploy("demo")
    p.dir.mkdir()
    return p


def test_missing_journal_means_not_installed(paths):
    assert journal.load(paths) is None


def test_roundtrip_and_begin_keeps_started_at(paths, monkeypatch):
    state = journal.new_state("demo", "classification")
    journal.begin(paths, state, "install", "runtime", release="1.0.0")
    first = journal.load(paths)["operation"]
    assert (first["op"], first["step"], first["release"], first["pid"]) == ("install", "runtime", "1.0.0", os.getpid())
    monkeypatch.setattr(journal, "now", lambda: "later")
    journal.begin(paths, state, "install", "release")
    second = journal.load(paths)["operation"]
    assert second["step"] == "release" and second["release"] == "1.0.0"
    assert second["started_at"] == first["started_at"]
    journal.clear(paths, state)
    assert journal.load(paths)["operation"] is None


def test_damaged_journal_is_reported_not_guessed(paths):
    paths.state.write_text("{not json")
    with pytest.raises(ConfigInvalid, match="not valid JSON"):
        journal.load(paths)
    paths.state.write_text("[]")
    with pytest.raises(ConfigInvalid, match="JSON object"):
        journal.load(paths)


@pytest.mark.parametrize(
    "state, action",
    [
        (None, "none"),
        ({"release": "1.0.0", "operation": None}, "none"),
        ({"release": None, "operation": {"op": "install", "step": "runtime", "release": "1.0.0"}}, "undo-install"),
        ({"release": None, "operation": {"op": "install", "step": "switch", "release": "1.0.0"}}, "undo-install"),
        ({"release": "1.0.0", "operation": {"op": "install", "step": "switch", "release": "1.0.0"}}, "clear"),
        ({"release": "1.0.0", "operation": {"op": "remove", "step": "delete"}}, "complete-remove"),
        ({"release": "1.0.0", "operation": {"op": "start", "step": "spawn"}}, "clear"),
        ({"release": "1.0.0", "operation": {"op": "stop", "step": "signal"}}, "clear"),
    ],
)
def test_recovery_decisions(state, action):
    assert journal.decide(state).action == action


def test_lock_is_exclusive_per_deploy(paths, tmp_path):
    with journal.deploy_lock(paths):
        with pytest.raises(OperationLocked, match=f"pid {os.getpid()}"), journal.deploy_lock(paths):
            pass
        with journal.deploy_lock(Root(tmp_path).deploy("other")):
            pass
    with journal.deploy_lock(paths):  # released on exit
        pass


def _half_install(paths, step):
    state = journal.new_state("demo", "classification")
    journal.begin(paths, state, "install", step, release="1.0.0")
    half = paths.release("1.0.0")
    (half / "package").mkdir(parents=True)
    (half / "package" / "partial.py").write_text("x")
    return half


def test_undo_install_removes_half_release_and_journal_keeps_data(paths):
    half = _half_install(paths, "release")
    os.symlink("releases/1.0.0", paths.current)
    (paths.data / "gallery.db").parent.mkdir()
    (paths.data / "gallery.db").write_text("keep")
    said = []
    assert recovery.recover(paths, journal.load(paths), said.append) is None
    assert not half.exists() and not paths.current.is_symlink() and not paths.state.exists()
    assert (paths.data / "gallery.db").read_text() == "keep"
    assert any("removed half-made release" in s for s in said)


def test_complete_remove_finishes_and_keeps_data(paths):
    state = journal.new_state("demo", "classification")
    state["release"] = "1.0.0"
    paths.release("1.0.0").mkdir(parents=True)
    paths.data.mkdir()
    journal.begin(paths, state, "remove", "delete", purge=False)
    assert recovery.recover(paths, journal.load(paths), lambda s: None) is None
    assert not paths.releases.exists() and not paths.state.exists() and paths.data.is_dir()


def test_interrupted_start_is_cleared(paths):
    state = journal.new_state("demo", "classification")
    state["release"] = "1.0.0"
    journal.begin(paths, state, "start", "spawn")
    after = recovery.recover(paths, journal.load(paths), lambda s: None)
    assert after["operation"] is None and json.loads(paths.state.read_text())["operation"] is None
