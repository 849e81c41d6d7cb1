"""Kept releases, previous, keep-N pruning, the switch's recovery decisions (the socket handover:
tests/unit/test_handover.py; the kill at a checkpoint: tests/integration/installer/test_journal.py)."""

from __future__ import annotations

import pytest

from visionpack.installer import journal, releases
from visionpack.installer.layout import Root


def state(current, installed, history):
    return {
        "release": current,
        "releases": {v: {"installed_at": at} for v, at in installed.items()},
        "history": [{"release": v} for v in history],
    }


def test_previous_is_what_ran_before_the_current_one():
    s = state("1.1", {"1.0": "2026-01-01", "1.1": "2026-01-02", "0.9": "2025-12-01"}, ["0.9", "1.0", "1.1"])
    assert releases.previous(s) == "1.0"
    s["history"].append({"release": "0.9"})  # rolled back to 0.9 ...
    s["release"] = "0.9"
    assert releases.previous(s) == "1.1"  # ... so "back" is 1.1, as helm rollback means it


def test_previous_skips_pruned_and_falls_back_to_the_newest_other():
    s = state("2.0", {"2.0": "2026-02-01", "1.5": "2026-01-15"}, ["1.0", "2.0"])  # 1.0 pruned
    assert releases.previous(s) == "1.5"
    assert releases.previous(state("1.0", {"1.0": "x"}, ["1.0"])) is None


def test_prune_keeps_n_newest_but_never_current_or_previous():
    installed = {f"1.{i}": f"2026-01-0{i + 1}" for i in range(6)}
    s = state("1.0", installed, ["1.4", "1.0"])  # rolled back from 1.4 to the oldest
    s["releases"]["1.0"]["activated_at"] = "2026-01-09"
    assert releases.to_prune(s, keep=3) == ["1.1", "1.2", "1.3"]  # kept: 1.0 current, 1.4 previous, 1.5 newest
    assert releases.to_prune(s, keep=2) == ["1.1", "1.2", "1.3", "1.5"]
    assert releases.to_prune(s, keep=10) == []


def test_keep_defaults_to_5_and_ignores_nonsense():
    assert releases.keep_of({}) == 5 and releases.keep_of({"keep": 1}) == 5 and releases.keep_of({"keep": 3}) == 3


def test_record_activation_bounds_the_history():
    s = {"releases": {}}
    for i in range(releases.HISTORY_MAX + 7):
        releases.record_activation(s, f"v{i}", "upgrade")
    assert len(s["history"]) == releases.HISTORY_MAX and s["history"][-1]["release"] == f"v{releases.HISTORY_MAX + 6}"


@pytest.mark.parametrize("kind", ["upgrade", "rollback"])
def test_decide_undoes_an_uncommitted_switch_and_finishes_a_committed_one(kind):
    op = {"op": kind, "step": "prove", "release": "2.0", "from": "1.0"}
    assert journal.decide({"release": "1.0", "operation": op}).action == "undo-switch"
    assert journal.decide({"release": "2.0", "operation": dict(op, step="retire")}).action == "complete-switch"


def test_sweep_orphans_removes_unknown_release_dirs(tmp_path):
    paths = Root(tmp_path).deploy("demo")
    for v in ("1.0", "2.0", "3.0"):
        (paths.release(v)).mkdir(parents=True)
    said = []
    gone = releases.sweep_orphans(paths, {"release": "2.0", "releases": {"2.0": {}, "1.0": {}}}, said.append)
    assert gone == ["3.0"] and sorted(p.name for p in paths.releases.iterdir()) == ["1.0", "2.0"] and said
