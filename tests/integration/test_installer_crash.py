"""SIGKILL the installer in the middle of an install; the next run undoes the half and completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    SYSTEM_PYTHON,
    free_port,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    trial_license,
    wheelhouse,
)


def spawn_installer(src: Path, root: Path, *args: str) -> subprocess.Popen:
    # Own session, so the kill takes pip/venv children too, like an operator's kill -9 of the group.
    return subprocess.Popen(
        [SYSTEM_PYTHON, str(src / "package" / "Install" / "install.py"), "--root", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"installer finished before the kill point: {proc.stdout.read().decode()}"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def operation(root: Path) -> dict | None:
    try:
        return json.loads((root / DEPLOY / "state.json").read_text())["operation"]
    except (OSError, ValueError):
        return None


def test_killed_mid_copy_then_rerun_completes(source_tree, root):
    port = str(free_port())
    args = ("install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", port)
    proc = spawn_installer(source_tree, root, *args)
    half = root / DEPLOY / "releases" / "1.0.0"
    # The weights are 64 MiB, so this lands while they are being copied or hashed.
    kill_when(proc, lambda: (half / "models" / "tiny_bundle").is_dir())
    assert operation(root)["op"] == "install" and not (half / "release.json").exists()
    st = status_json(source_tree, root)
    assert st["interrupted_operation"]["step"] == "release" and st["state"] == "not-installed"

    rerun = run_installer(source_tree, root, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "recovery: an interrupted 'install' (stopped at step 'release'" in rerun.stdout
    assert "undoing it" in rerun.stdout and f"removed half-made release {half}" in rerun.stdout
    rel = root / DEPLOY / "releases" / "1.0.0"
    size = (source_tree / "models" / "tiny_bundle" / "inference.pdiparams").stat().st_size
    assert (rel / "models" / "tiny_bundle" / "inference.pdiparams").stat().st_size == size
    assert json.loads((rel / "release.json").read_text())["version"] == "1.0.0"
    st = status_json(source_tree, root)
    assert (st["state"], st["release"], st["interrupted_operation"]) == ("stopped", "1.0.0", None)


def test_killed_mid_runtime_build_then_rerun_completes(tmp_path, source_tree):
    root = tmp_path / "fresh"  # its own runtime: this test must interrupt a real build
    port = str(free_port())
    args = ("install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", port)
    log = root / ".runtime" / "install.log"
    proc = spawn_installer(source_tree, root, *args)
    # Kill once pip is installing into the build dir (its command line is logged before it runs).
    kill_when(
        proc,
        lambda: (
            log.exists()
            and "pip install" in log.read_text()
            and any((root / ".runtime").glob(".build-*/lib/python3*/site-packages/*"))
        ),
    )
    builds = list((root / ".runtime").glob(".build-*"))
    assert builds and not [
        p for p in (root / ".runtime").iterdir() if not p.name.startswith(".") and p.name != "install.log"
    ], "a runtime dir looked complete after the kill"
    assert operation(root)["step"] == "runtime"

    rerun = run_installer(source_tree, root, *args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "recovery: an interrupted 'install' (stopped at step 'runtime'" in rerun.stdout
    assert not list((root / ".runtime").glob(".build-*"))
    runtimes = [p for p in (root / ".runtime").iterdir() if not p.name.startswith(".") and p.is_dir()]
    assert len(runtimes) == 1 and (runtimes[0] / "bin" / "gunicorn").read_text().startswith(
        f"#!{runtimes[0]}/bin/python"
    )
    st = status_json(source_tree, root)
    assert (st["state"], st["release"]) == ("stopped", "1.0.0")
