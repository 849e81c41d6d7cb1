"""install -> status -> stop -> start -> restart -> remove, with real gunicorn on loopback.

The package tree has a stand-in app (see test_installer_fixtures), so these tests are about
process management, layout and the journal, not about Paddle.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

from test_installer_fixtures import (  # noqa: F401
    DEPLOY,
    alive,
    free_port,
    post_json,
    root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    trial_license,
    wheelhouse,
)


def test_full_lifecycle(source_tree, root, trial_license):
    port = free_port()
    proc = run_installer(source_tree, root, "in", DEPLOY, "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{DEPLOY} is ready" in proc.stdout

    # Layout of the install root.
    d = root / DEPLOY
    assert os.readlink(d / "current") == "releases/1.0.0"
    rel = d / "releases" / "1.0.0"
    for rel_path in (
        "package/visionpack/config.py",
        "package/catalog.yml",
        "package/VERSION",
        "models/tiny_bundle/inference.pdiparams",
        "config.yml",
        "start/start-1.sh",
        "start/gunicorn_conf.py",
        "release.json",
    ):
        assert (rel / rel_path).exists(), rel_path
    info = json.loads((rel / "release.json").read_text())
    assert info["version"] == "1.0.0" and Path(info["runtime"]).parent == root / ".runtime"
    assert set(info["models"]["tiny_bundle"]) >= {"inference.json", "inference.pdiparams", "inference.yml"}
    pub, lic = trial_license
    assert (root / "licenses" / pub.name).read_bytes() == pub.read_bytes()
    assert (root / "licenses" / "license.lic").read_bytes() == lic.read_bytes()
    for sub in ("data", "logs", "run"):
        assert (d / sub).is_dir()
    state = json.loads((d / "state.json").read_text())
    assert (state["release"], state["desired"], state["port"], state["operation"]) == ("1.0.0", "running", port, None)

    # status: pids, address, readiness; the master really is gunicorn with our config and no --preload.
    st = status_json(source_tree, root)
    assert (st["state"], st["release"], st["host"], st["port"], st["ready"]) == (
        "running",
        "1.0.0",
        "127.0.0.1",
        port,
        True,
    )
    assert len(st["worker_pids"]) == 1 and st["ready_detail"]["pid"] == st["worker_pids"][0]
    cmdline = Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")
    assert str(rel / "start" / "gunicorn_conf.py").encode() in cmdline and b"--preload" not in cmdline
    assert (d / "run" / "gunicorn.pid").read_text().strip() == str(st["pid"])
    assert st["ready_detail"]["models"] == {"classifier": str(rel / "models" / "tiny_bundle")}
    # The master holds a licensed instance slot (taken in gunicorn_conf.py's on_starting).
    from visionpack.licensing import instances

    assert any(h.get("pid") == st["pid"] and h.get("deploy") == DEPLOY for h in instances.holders())
    code, body = post_json(port, f"/{DEPLOY}/ImageClassification", {"image": "x"})
    assert code == 200 and body["results"][0]["name"] == "stand-in"

    listed = json.loads(run_installer(source_tree, root, "li", "--json").stdout)
    assert [(x["deploy"], x["state"], x["release"], x["port"]) for x in listed["deploys"]] == [
        (DEPLOY, "running", "1.0.0", port)
    ]
    found = json.loads(run_installer(source_tree, root, "se", "--json").stdout)
    assert found["deploys"][0]["installed"] is True and found["deploys"][0]["port"] == 18701

    # stop: master and workers gone, pid file gone, state stopped.
    old = [st["pid"], *st["worker_pids"]]
    proc = run_installer(source_tree, root, "stop", DEPLOY)
    assert proc.returncode == 0, proc.stderr
    assert not any(alive(p) for p in old) and not (d / "run" / "gunicorn.pid").exists()
    st = status_json(source_tree, root)
    assert (st["state"], st["pid"], st["ready"]) == ("stopped", None, None)
    assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0  # idempotent

    # start and restart give new masters on the same port.
    assert run_installer(source_tree, root, "start", DEPLOY).returncode == 0
    first = status_json(source_tree, root)["pid"]
    again = run_installer(source_tree, root, "start", DEPLOY)
    assert again.returncode == 0 and "already running" in again.stdout
    assert run_installer(source_tree, root, "restart", DEPLOY).returncode == 0
    st = status_json(source_tree, root)
    assert st["state"] == "running" and st["ready"] and st["pid"] != first and not alive(first)

    # remove keeps data/ and logs/.
    (d / "data" / "gallery.db").write_text("precious")
    proc = run_installer(source_tree, root, "rm", DEPLOY)
    assert proc.returncode == 0, proc.stderr
    assert not alive(st["pid"])
    assert (d / "data" / "gallery.db").read_text() == "precious" and (d / "logs" / "error.log").exists()
    assert not (d / "releases").exists() and not (d / "current").is_symlink() and not (d / "state.json").exists()
    assert json.loads(run_installer(source_tree, root, "list", "--json").stdout)["deploys"] == []

    # reinstall over kept data, then purge everything.
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    assert (d / "data" / "gallery.db").exists()
    assert status_json(source_tree, root)["state"] == "stopped"
    assert run_installer(source_tree, root, "remove", DEPLOY, "--purge").returncode == 0
    assert not d.exists()
    assert run_installer(source_tree, root, "remove", DEPLOY).returncode == 14


def test_two_workers_split_the_cores(source_tree, root):
    port = free_port()
    proc = run_installer(
        source_tree, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = status_json(source_tree, root)
    assert len(st["worker_pids"]) == 2
    assert st["ready_detail"]["threads"] == str(max(1, (os.cpu_count() or 1) // 2))
    # A lost pid file does not hide the running service: it is found in /proc and stopped.
    (root / DEPLOY / "run" / "gunicorn.pid").unlink()
    again = status_json(source_tree, root)
    assert (again["state"], again["pid"], again["worker_pids"]) == ("running", st["pid"], st["worker_pids"])
    assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0
    assert not any(alive(p) for p in [st["pid"], *st["worker_pids"]])


def test_start_script_runs_the_same_service_by_hand(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    script = root / DEPLOY / "releases" / "1.0.0" / "start" / "start-1.sh"
    out = subprocess.run(["bash", str(script), "--daemon"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "started gunicorn" in out.stdout
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = status_json(source_tree, root)
        if st["ready"]:
            break
        time.sleep(0.3)
    assert st["state"] == "running" and st["ready"] is True
    # Started by root, it runs as the service user, like 'install.py start' (issue 14 item 4).
    uid = next(
        line.split()[1]
        for line in Path(f"/proc/{st['pid']}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert int(uid) == pwd.getpwnam("visionpack").pw_uid
    # The installer manages a hand-started service like its own.
    assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0
    assert not alive(st["pid"])


def test_stale_pid_file_never_kills_a_stranger(source_tree, root):
    port = free_port()
    assert (
        run_installer(
            source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port)
        ).returncode
        == 0
    )
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (root / DEPLOY / "run" / "gunicorn.pid").write_text(f"{stranger.pid}\n")
        st = status_json(source_tree, root)
        assert (st["state"], st["stale_pidfile"]) == ("stopped", True)
        assert "stale pid file" in run_installer(source_tree, root, "status", DEPLOY).stdout
        assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0
        assert stranger.poll() is None
        (root / DEPLOY / "run" / "gunicorn.pid").write_text(f"{stranger.pid}\n")
        proc = run_installer(source_tree, root, "start", DEPLOY)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert stranger.poll() is None and status_json(source_tree, root)["pid"] != stranger.pid
        assert run_installer(source_tree, root, "stop", DEPLOY).returncode == 0
    finally:
        stranger.kill()
        stranger.wait()


def test_remove_collects_runtimes_no_release_uses(source_tree, tmp_path, shared_runtime, trial_license):
    # A root with its own .runtime (not the tests' shared symlink): the live venv is linked in by
    # key, next to a stale venv of an old lock that no release uses and nobody touched for 2 h.
    root = tmp_path / "root"
    (root / ".runtime").mkdir(parents=True)
    live = next(shared_runtime.glob("*/bin/gunicorn")).parent.parent
    os.symlink(live, root / ".runtime" / live.name)
    stale = root / ".runtime" / "0123456789abcdef"
    (stale / "bin").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    port = free_port()
    proc = run_installer(source_tree, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stale.is_dir(), "install must not collect"

    proc = run_installer(source_tree, root, "remove", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed runtime 0123456789abcdef" in proc.stdout
    assert not stale.exists()
    # The live venv was used by install seconds ago (grace period): kept, and the shared one untouched.
    assert (root / ".runtime" / live.name).exists() and (live / "bin" / "gunicorn").exists()
