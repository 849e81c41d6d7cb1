"""Every installer failure an operator can meet, with its exit code and nothing left half-done."""

from __future__ import annotations

import fcntl
import os
import socket

import pytest
from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    alive,
    free_port,
    make_source_tree,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    trial_license,
    wheelhouse,
)


def test_port_in_use_exits_11_before_writing(source_tree, root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_installer(source_tree, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 11, proc.stdout + proc.stderr
    assert f"[FAIL] port: cannot bind 127.0.0.1:{port}" in proc.stdout
    assert "error: " in proc.stderr and "hint: Pick another port" in proc.stderr
    assert not (root / DEPLOY).exists()


def test_force_installs_despite_a_failed_check(source_tree, root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_installer(
            source_tree, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), "--force", "--stopped"
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "going on because of --force" in proc.stderr
    assert status_json(source_tree, root)["state"] == "stopped"


def test_port_taken_after_install_blocks_start_with_11(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "in", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert run_installer(source_tree, root, "start", DEPLOY).returncode == 11


def test_unknown_deploy_exits_13(source_tree, root):
    proc = run_installer(source_tree, root, "install", "no-such-deploy")
    assert proc.returncode == 13 and "offers: test-classify" in proc.stderr
    assert not (root / "no-such-deploy").exists()


@pytest.mark.parametrize(
    "command", [["start", DEPLOY], ["stop", DEPLOY], ["restart", DEPLOY], ["status", DEPLOY], ["remove", DEPLOY]]
)
def test_not_installed_exits_14(source_tree, root, command):
    proc = run_installer(source_tree, root, *command)
    assert proc.returncode == 14, proc.stderr
    assert "hint: Run 'install.py list'" in proc.stderr


def test_second_install_exits_15(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    proc = run_installer(
        source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(free_port())
    )
    assert proc.returncode == 15 and "already installed" in proc.stderr


def test_bad_option_value_exits_19_before_writing(source_tree, root):
    proc = run_installer(source_tree, root, "install", DEPLOY, "--port", "70000")
    assert proc.returncode == 19 and "port must be 1..65535" in proc.stderr
    assert not (root / DEPLOY).exists()


def test_boot_failure_exits_17_with_the_log_and_status_says_failed(source_tree, root):
    port = free_port()
    proc = run_installer(
        source_tree,
        root,
        "install",
        DEPLOY,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        env={"STANDIN_MODE": "fail-boot"},
    )
    assert proc.returncode == 17, proc.stdout + proc.stderr
    assert "stand-in told to fail at boot" in proc.stderr and "error.log" in proc.stderr
    st = status_json(source_tree, root)
    assert (st["state"], st["desired"], st["release"]) == ("failed", "running", "1.0.0")
    assert "fail: " in run_installer(source_tree, root, "status").stdout
    # Fixed (the stand-in boots normally): start brings it up.
    assert run_installer(source_tree, root, "start", DEPLOY).returncode == 0
    assert status_json(source_tree, root)["state"] == "running"
    assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0


def test_never_ready_times_out_with_17_and_leaves_no_process(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    proc = run_installer(source_tree, root, "start", DEPLOY, "--timeout", "3", env={"STANDIN_MODE": "never-ready"})
    assert proc.returncode == 17 and "not ready after 3 s" in proc.stderr and "503" in proc.stderr
    st = status_json(source_tree, root)
    assert st["state"] == "failed" and st["pid"] is None
    pid = int(proc.stdout.split("(pid ")[1].split(")")[0])
    assert not alive(pid)


def test_concurrent_installer_is_refused_with_21(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    fd = os.open(root / DEPLOY / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = run_installer(source_tree, root, "start", DEPLOY)
        assert proc.returncode == 21 and "locked by another install.py" in proc.stderr
        # Read-only commands do not need the lock.
        assert run_installer(source_tree, root, "status", DEPLOY).returncode == 0
    finally:
        os.close(fd)
    assert status_json(source_tree, root)["state"] == "stopped"


def test_damaged_package_exits_12(tmp_path, wheelhouse, shared_runtime):
    src = make_source_tree(tmp_path / "src", wheelhouse, params_bytes=1024)
    tool = src / "tools" / "download"
    tool.mkdir(parents=True)
    (tool / "__init__.py").write_text("")
    (src / "tools" / "__init__.py").write_text("")
    (tool / "verify.py").write_text(
        "from dataclasses import dataclass\n"
        "@dataclass(frozen=True)\nclass Item:\n    status: str\n    kind: str\n    path: str\n    detail: str = ''\n"
        "def verify(root):\n    return [Item('CORRUPT', 'wheel', 'original/wheels/flask.whl', 'sha256 00')]\n"
    )
    root = tmp_path / "root"
    proc = run_installer(src, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(free_port()))
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "CORRUPT original/wheels/flask.whl (sha256 00)" in proc.stdout and "download.sh --verify" in proc.stdout
    assert not (root / DEPLOY).exists()


def test_missing_model_exits_22(tmp_path, wheelhouse):
    src = make_source_tree(tmp_path / "src", wheelhouse, params_bytes=1024)
    (src / "models" / "tiny_bundle" / "inference.pdiparams").unlink()
    proc = run_installer(src, tmp_path / "root", "install", DEPLOY, "--port", str(free_port()))
    assert proc.returncode == 22 and "models/tiny_bundle has no inference.pdiparams" in proc.stdout


def test_broken_wheelhouse_exits_16_and_leaves_nothing_half_made(tmp_path, wheelhouse):
    src = make_source_tree(tmp_path / "src", wheelhouse, params_bytes=1024)
    os.unlink(src / "original" / "wheels")
    (src / "original" / "wheels").mkdir()  # empty: pip cannot find anything
    root = tmp_path / "root"
    proc = run_installer(src, root, "install", DEPLOY, "--force", "--port", str(free_port()))
    assert proc.returncode == 16, proc.stdout + proc.stderr
    assert "install.log" in proc.stderr and "undoing it" in proc.stdout
    assert [
        p.name for p in (root / ".runtime").iterdir() if not p.name.startswith(".") or p.name.startswith(".build")
    ] == ["install.log"]
    assert "No matching distribution" in (root / ".runtime" / "install.log").read_text()
    # Undone at once: the deploy is not installed, and nothing is left for a later run to repair.
    assert not (root / DEPLOY / "state.json").exists() and not (root / DEPLOY / "releases").exists()
    assert run_installer(src, root, "status", DEPLOY).returncode == 14


def test_start_without_a_license_exits_20_and_starts_nothing(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    (root / "licenses" / "license.lic").unlink()
    proc = run_installer(source_tree, root, "start", DEPLOY)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert "license" in proc.stderr and "hint: " in proc.stderr
    st = status_json(source_tree, root)
    assert st["pid"] is None and not (root / DEPLOY / "run" / "gunicorn.pid").exists()
