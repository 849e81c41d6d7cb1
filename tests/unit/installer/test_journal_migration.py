"""state.json schema 1 -> 2 (``runtime`` -> ``runtime_kind``, ``releases[v]["runtime"]`` -> ``venv``) on read.

The schema-1 files in data/ are what the installer before the rename wrote: the process one is
copied from a real install (install, upgrade to 9.0.0, rollback; its root path replaced by
@ROOT@), the docker one is the same with what ``install --runtime docker`` and its starts add
(the kind, an image per kept release).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from visionpack.installer import journal
from visionpack.installer.commands.list import list_installed
from visionpack.installer.context import Context
from visionpack.installer.layout import Root
from visionpack.installer.runtimes.kinds import runtime_for

DATA = Path(__file__).resolve().parent / "data"


def old_root(tmp_path: Path, flavour: str, edit=None) -> tuple[Root, dict]:
    """A root whose one deploy has the schema-1 state.json of ``flavour``; (root, that state)."""
    root = Root(tmp_path / "root")
    old = json.loads((DATA / f"state-schema1-{flavour}.json").read_text().replace("@ROOT@", str(root.path)))
    if edit:
        edit(old)
    paths = root.deploy(old["deploy"])
    paths.dir.mkdir(parents=True)
    (paths.dir / ".lock").write_text("")
    paths.state.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    return root, old


def on_disk(root: Root, deploy: str) -> dict:
    return json.loads(root.deploy(deploy).state.read_text())


def expected(old: dict) -> dict:
    """The schema-2 state: only the renamed keys and the schema differ."""
    new = json.loads(json.dumps(old))
    new["schema"] = 2
    if "runtime" in new:
        new["runtime_kind"] = new.pop("runtime")
    for info in new["releases"].values():
        info["venv"] = info.pop("runtime")
    return new


@pytest.mark.parametrize("flavour, kind", [("process", "process"), ("docker", "docker")])
def test_a_root_the_old_installer_wrote_is_migrated_when_read(tmp_path, flavour, kind):
    root, old = old_root(tmp_path, flavour)
    state = journal.load(root.deploy(old["deploy"]))
    assert state == expected(old)
    assert state["runtime_kind"] == kind and "runtime" not in state
    assert {v: i["venv"] for v, i in state["releases"].items()} == {v: i["runtime"] for v, i in old["releases"].items()}
    assert on_disk(root, old["deploy"]) == state  # written back, updated_at untouched
    assert runtime_for(state).kind == kind


def test_the_docker_kind_and_images_survive(tmp_path):
    root, old = old_root(tmp_path, "docker")
    state = journal.load(root.deploy(old["deploy"]))
    assert type(runtime_for(state)).__name__ == "DockerRuntime"
    assert all(info["image"]["id"].startswith("sha256:") for info in state["releases"].values())


def test_a_state_from_before_docker_deploys_runs_as_processes(tmp_path):
    root, old = old_root(tmp_path, "process", edit=lambda s: s.pop("runtime"))
    state = journal.load(root.deploy(old["deploy"]))
    assert "runtime_kind" not in state and state["schema"] == 2
    assert runtime_for(state).kind == "process"
    assert on_disk(root, old["deploy"]) == state


def test_migration_is_idempotent_and_a_new_state_is_not_rewritten(tmp_path):
    root, old = old_root(tmp_path, "process")
    paths = root.deploy(old["deploy"])
    first = journal.load(paths)
    before = os.stat(paths.state)
    assert journal.load(paths) == first
    after = os.stat(paths.state)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert journal.migrate(first) is False
    assert journal.new_state("d", "classification")["schema"] == journal.SCHEMA == 2


def test_an_interrupted_operation_is_kept_and_decided_the_same(tmp_path):
    op = {"op": "upgrade", "step": "prove", "release": "9.0.0", "from": "1.0.0", "pid": 1, "started_at": "t"}
    root, old = old_root(tmp_path, "process", edit=lambda s: s.update(operation=op))
    state = journal.load(root.deploy(old["deploy"]))
    assert state["operation"] == op
    assert journal.decide(state) == journal.decide(old)


def test_under_a_held_lock_it_is_migrated_in_memory_and_saved_by_the_holder(tmp_path):
    root, old = old_root(tmp_path, "docker")
    paths = root.deploy(old["deploy"])
    with journal.deploy_lock(paths):  # this process's lock conflicts with the write-back's too
        state = journal.load(paths)
        assert state["runtime_kind"] == "docker"
        assert on_disk(root, old["deploy"]) == old  # not written behind the holder's back
        journal.save(paths, state)
    saved = on_disk(root, old["deploy"])
    assert saved["runtime_kind"] == "docker" and "runtime" not in saved and saved["schema"] == 2


def test_a_reader_that_cannot_write_keeps_the_migration_in_memory(tmp_path, monkeypatch):
    root, old = old_root(tmp_path, "process")

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(journal, "atomic_write", refuse)
    state = journal.load(root.deploy(old["deploy"]))
    assert state == expected(old)
    assert on_disk(root, old["deploy"]) == old


def test_list_reads_a_migrated_root_with_its_output_unchanged(tmp_path):
    root, old = old_root(tmp_path, "process")
    doc = list_installed(Context(root, source=None))  # type: ignore[arg-type]
    (row,) = doc["deploys"]
    assert (row["deploy"], row["runtime"], row["state"], row["release"]) == ("demo-face", "process", "stopped", "1.0.0")
    assert {r["version"]: r["runtime"] for r in row["releases"]} == {
        v: info["runtime"] for v, info in old["releases"].items()
    }  # the venv, under its old output key
    assert on_disk(root, "demo-face")["schema"] == 2
