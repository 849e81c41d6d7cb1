"""tools/convert/convert_env.py: the converter's wheels go into the build environment once per lock."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.convert import convert_env as CE  # noqa: E402
from tools.download.lockfile import parse_lock  # noqa: E402


def fake_root(tmp_path: Path, pip_exit: int = 0) -> tuple[Path, Path, Path]:
    """A repo root with the real convert.lock and a build env whose "python" records its arguments."""
    root = tmp_path / "root"
    (root / "original").mkdir(parents=True)
    (root / CE.LOCK).write_bytes((REPO / CE.LOCK).read_bytes())
    env = root / CE.BUILDENV
    (env / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    python = env / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "pip says no" >&2\nexit {pip_exit}\n')
    python.chmod(0o755)
    return root, env, calls


def test_the_lock_pins_the_converter_for_the_build_python():
    entries = {e.name: e for e in parse_lock(REPO / CE.LOCK)}
    assert set(entries) == {"paddle2onnx", "onnx"}
    assert entries["paddle2onnx"].version == "2.1.0" and "cp311" in entries["paddle2onnx"].filename
    source = (REPO / CE.SOURCE).read_text()
    assert "paddle2onnx==2.1.0" in source and f"onnx=={entries['onnx'].version}" in source


def test_installed_once_per_lock(tmp_path, monkeypatch):
    root, env, calls = fake_root(tmp_path)
    fetched: list[Path] = []
    monkeypatch.setattr(CE, "fetch", fetched.append)
    assert not CE.installed(root, env)
    assert CE.ensure(root, env).startswith("converter: installed")
    args = calls.read_text()
    for flag in (
        "--no-index",
        "--no-deps",
        "--require-hashes",
        f"--find-links {root / CE.WHEELS}",
        f"-r {root / CE.LOCK}",
    ):
        assert flag in args, flag
    assert fetched == [root] and CE.installed(root, env)
    assert CE.ensure(root, env).startswith("converter: reused") and len(fetched) == 1
    (root / CE.LOCK).write_text((root / CE.LOCK).read_text() + "\n")  # a new lock installs again
    assert CE.ensure(root, env).startswith("converter: installed") and len(fetched) == 2


def test_a_failed_install_leaves_no_stamp_and_says_why(tmp_path, monkeypatch, capsys):
    root, env, _ = fake_root(tmp_path, pip_exit=1)
    monkeypatch.setattr(CE, "fetch", lambda root: None)
    with pytest.raises(RuntimeError, match="failed \\(exit 1\\):\npip says no"):
        CE.ensure(root, env)
    assert not (env / CE.STAMP).exists()
    assert CE.main(["--root", str(root)]) == CE.EXIT_FAILED
    assert "convert_env: RuntimeError" in capsys.readouterr().err


def test_no_build_environment_is_an_error(tmp_path, capsys):
    root, env, _ = fake_root(tmp_path)
    os.remove(env / "bin" / "python")
    assert CE.main(["--root", str(root)]) == CE.EXIT_FAILED
    assert "no build environment" in capsys.readouterr().err
