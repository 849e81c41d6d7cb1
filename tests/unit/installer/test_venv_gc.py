"""Runtime venvs are removed only when no kept release of any deploy uses them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from visionpack.installer import venv_gc
from visionpack.installer.layout import Root

OLD = time.time() - 2 * venv_gc.GRACE_S


def _venv(root: Root, key: str, mtime: float = OLD) -> Path:
    venv = root.venv(key)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    os.utime(venv, (mtime, mtime))
    return venv


def _release(root: Root, deploy: str, version: str, runtime: Path | None) -> Path:
    paths = root.deploy(deploy)
    paths.dir.mkdir(parents=True, exist_ok=True)
    paths.state.write_text("{}")
    rel = paths.release(version)
    rel.mkdir(parents=True)
    if runtime is not None:
        (rel / "release.json").write_text(json.dumps({"runtime": str(runtime)}))
    return rel


def _root(tmp_path: Path) -> Root:
    return Root(tmp_path / "root")


def test_unreferenced_runtime_is_removed_and_used_ones_stay(tmp_path):
    root = _root(tmp_path)
    used, unused = _venv(root, "aaaa"), _venv(root, "bbbb")
    _release(root, "demo-classify", "1.0.0", used)
    removed = venv_gc.collect(root, say=lambda _m: None)
    assert removed == ["bbbb"]
    assert used.is_dir() and not unused.exists()


def test_runtime_shared_by_another_deploy_stays(tmp_path):
    root = _root(tmp_path)
    a, b = _venv(root, "aaaa"), _venv(root, "bbbb")
    _release(root, "demo-classify", "2.0.0", a)
    _release(root, "demo-face", "1.0.0", b)
    assert venv_gc.collect(root, say=lambda _m: None) == []
    assert a.is_dir() and b.is_dir()


def test_recently_used_runtime_is_kept_during_the_grace_period(tmp_path):
    root = _root(tmp_path)
    fresh = _venv(root, "cccc", mtime=time.time())
    _release(root, "demo-classify", "1.0.0", _venv(root, "aaaa"))
    assert venv_gc.collect(root, say=lambda _m: None) == []
    assert fresh.is_dir()


def test_unreadable_release_json_means_nothing_is_removed(tmp_path):
    root = _root(tmp_path)
    unused = _venv(root, "bbbb")
    _release(root, "demo-classify", "1.0.0", None)
    messages: list[str] = []
    assert venv_gc.collect(root, say=messages.append) == []
    assert unused.is_dir()
    assert "skipped" in messages[0]


def test_leftover_of_a_killed_collection_is_swept(tmp_path):
    root = _root(tmp_path)
    _release(root, "demo-classify", "1.0.0", _venv(root, "aaaa"))
    leftover = root.venv_base / f"{venv_gc.GC_PREFIX}bbbb-123"
    (leftover / "bin").mkdir(parents=True)
    venv_gc.collect(root, say=lambda _m: None)
    assert not leftover.exists()


def test_files_and_hidden_entries_of_the_runtime_dir_are_left_alone(tmp_path):
    root = _root(tmp_path)
    _release(root, "demo-classify", "1.0.0", _venv(root, "aaaa"))
    root.venv_log.write_text("log")
    (root.venv_base / ".build-dddd-1").mkdir()
    venv_gc.collect(root, say=lambda _m: None)
    assert root.venv_log.is_file() and (root.venv_base / ".build-dddd-1").is_dir()


def test_no_runtime_dir_is_nothing_to_do(tmp_path):
    assert venv_gc.collect(_root(tmp_path), say=lambda _m: None) == []


def test_a_runtime_dir_shared_through_a_symlink_is_never_collected(tmp_path):
    shared = Root(tmp_path / "shared")
    unused = _venv(shared, "bbbb")
    root = _root(tmp_path)
    root.path.mkdir()
    os.symlink(shared.venv_base, root.venv_base)
    _release(root, "demo-classify", "1.0.0", _venv(shared, "aaaa"))
    assert venv_gc.collect(root, say=lambda _m: None) == []
    assert unused.is_dir()
