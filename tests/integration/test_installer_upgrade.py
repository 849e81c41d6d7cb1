"""upgrade / rollback / list / keep-N with real gunicorn masters of the stand-in app, under load.

Two package trees: ``source_tree`` (1.0.0, the session's) and ``v2_tree`` (the same with
VERSION 1.1.0, its own trial license copy). The stand-in's /ready names its model paths,
which carry the release version, so each answer says which release served it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

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


def version_tree(base: Path, wheelhouse: Path, source_tree: Path, version: str) -> Path:
    src = make_source_tree(base, wheelhouse, params_bytes=4096)
    (src / "package" / "VERSION").write_text(version + "\n")
    for lic in (source_tree / "licenses").iterdir():
        shutil.copy2(lic, src / "licenses" / lic.name)
    return src


@pytest.fixture(scope="module")
def v2_tree(tmp_path_factory, wheelhouse, source_tree, trial_license):
    return version_tree(tmp_path_factory.mktemp("v2"), wheelhouse, source_tree, "1.1.0")


@pytest.fixture(scope="module")
def v3_tree(tmp_path_factory, wheelhouse, source_tree, trial_license):
    return version_tree(tmp_path_factory.mktemp("v3"), wheelhouse, source_tree, "1.2.0")


def served_release(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/ready", timeout=10) as resp:
        return Path(json.loads(resp.read())["models"]["classifier"]).parents[1].name


class Load:
    """Clients POSTing classification requests in a loop (a new connection each); counts failures."""

    def __init__(self, port: int, threads: int = 4):
        self.port, self.stop, self.ok, self.failed = port, threading.Event(), 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = json.dumps({"image": "x"}).encode()
        while not self.stop.is_set():
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/{DEPLOY}/ImageClassification",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with opener.open(req, timeout=30) as resp:
                    good = resp.status == 200 and json.loads(resp.read())["results"]
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed.append("bad answer")
            except (OSError, ValueError) as exc:
                with self.lock:
                    self.failed.append(repr(exc))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def install(src, root, port, *extra):
    proc = run_installer(src, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def state_of(root: Path) -> dict:
    return json.loads((root / DEPLOY / "state.json").read_text())


def test_upgrade_and_rollback_under_load_fail_no_request(source_tree, v2_tree, root):
    port = free_port()
    install(source_tree, root, port)
    d = root / DEPLOY
    (d / "data" / "gallery.db").write_text("precious")
    first = status_json(source_tree, root)
    from visionpack.licensing import instances

    slot = [h["slot"] for h in instances.holders() if h.get("pid") == first["pid"]]
    with Load(port) as load:
        time.sleep(0.5)
        up = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
        assert up.returncode == 0, up.stdout + up.stderr
        time.sleep(0.5)
        mid = load.ok
        rb = run_installer(source_tree, root, "rollback", DEPLOY)
        assert rb.returncode == 0, rb.stdout + rb.stderr
        time.sleep(0.5)
    assert load.failed == [], load.failed[:5]
    assert load.ok > mid > 20
    assert "is healthy: cat.jpg -> 'stand-in'" in up.stdout and "traffic now goes to release 1.1.0" in up.stdout
    assert "runtime" in up.stdout and "reused: same lock file" in up.stdout
    assert not alive(first["pid"])
    st = status_json(source_tree, root)
    assert (st["state"], st["release"], st["ready"]) == ("running", "1.0.0", True)
    assert os.readlink(d / "current") == "releases/1.0.0" and served_release(port) == "1.0.0"
    assert (d / "run" / "gunicorn.pid").read_text().strip() == str(st["pid"])
    assert os.readlink(d / "run" / "gunicorn.pid") == "1.0.0/gunicorn.pid"
    assert (d / "data" / "gallery.db").read_text() == "precious"
    assert state_of(root)["operation"] is None
    # One master, one licensed instance slot: the same slot file, handed from master to master
    # (a new slot taken while the old master still held its own would have another number).
    mine = [h for h in instances.holders() if h.get("deploy") == DEPLOY and str(root) in h.get("release", "")]
    assert [(h["pid"], h["slot"]) for h in mine] == [(st["pid"], slot[0])]

    listed = json.loads(run_installer(source_tree, root, "list", "--json").stdout)["deploys"][0]
    assert [(r["version"], r["current"], r["previous"]) for r in listed["releases"]] == [
        ("1.0.0", True, False),
        ("1.1.0", False, True),
    ]
    text = run_installer(source_tree, root, "list").stdout
    assert "* current  1.0.0" in text and "previous 1.1.0" in text and "installed 20" in text
    # Rolling "back" again goes to the previous one: 1.1.0, by name too.
    rb = run_installer(source_tree, root, "rb", DEPLOY, "--to", "1.1.0")
    assert rb.returncode == 0, rb.stdout + rb.stderr
    assert served_release(port) == "1.1.0" and status_json(source_tree, root)["release"] == "1.1.0"


def test_new_release_that_fails_to_boot_is_rolled_back_automatically(source_tree, v2_tree, root):
    port = free_port()
    install(source_tree, root, port)
    before = status_json(source_tree, root)
    with Load(port, threads=2) as load:
        up = run_installer(
            source_tree, root, "up", DEPLOY, "--package", str(v2_tree), env={"STANDIN_MODE": "fail-boot"}
        )
    assert up.returncode == 17, up.stdout + up.stderr
    assert "upgrade of test-classify to 1.1.0 failed and was rolled back; release 1.0.0 keeps serving" in up.stderr
    assert "stand-in told to fail at boot" in up.stderr
    assert load.failed == [] and load.ok > 0
    st = status_json(source_tree, root)
    assert (st["release"], st["pid"], st["state"]) == ("1.0.0", before["pid"], "running")
    assert not (root / DEPLOY / "releases" / "1.1.0").exists()
    assert list(state_of(root)["releases"]) == ["1.0.0"] and state_of(root)["operation"] is None


def test_a_worker_failing_after_the_first_was_ready_still_rolls_back(source_tree, v2_tree, root):
    port = free_port()
    install(source_tree, root, port, "--workers", "2")
    before = status_json(source_tree, root)
    with Load(port, threads=2) as load:
        up = run_installer(
            source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree), env={"STANDIN_MODE": "second-worker-fails"}
        )
    assert up.returncode == 17, up.stdout + up.stderr
    assert "rolled back" in up.stderr and "traffic now goes" not in up.stdout
    assert load.failed == [] and load.ok > 0
    st = status_json(source_tree, root)
    assert (st["release"], st["pid"], len(st["worker_pids"])) == ("1.0.0", before["pid"], 2)


def test_new_release_never_ready_is_rolled_back_after_the_timeout(source_tree, v2_tree, root):
    port = free_port()
    install(source_tree, root, port)
    before = status_json(source_tree, root)
    up = run_installer(
        source_tree,
        root,
        "upgrade",
        DEPLOY,
        "--package",
        str(v2_tree),
        "--timeout",
        "3",
        env={"STANDIN_MODE": "never-ready"},
    )
    assert up.returncode == 17 and "not ready after 3 s" in up.stderr and "rolled back" in up.stderr
    candidate = int(up.stdout.split("on standby (pid ")[1].split(",")[0])
    assert not alive(candidate)
    st = status_json(source_tree, root)
    assert (st["release"], st["pid"]) == ("1.0.0", before["pid"]) and served_release(port) == "1.0.0"


def test_rollback_errors(source_tree, v2_tree, root):
    port = free_port()
    install(source_tree, root, port)
    nothing = run_installer(source_tree, root, "rollback", DEPLOY)
    assert nothing.returncode == 14 and "nothing to roll back to" in nothing.stderr
    assert run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree)).returncode == 0
    unknown = run_installer(source_tree, root, "rollback", DEPLOY, "--to", "9.9.9")
    assert unknown.returncode == 14 and "'9.9.9' of test-classify is not kept (kept: 1.0.0, 1.1.0)" in unknown.stderr
    same = run_installer(source_tree, root, "rollback", DEPLOY, "--to", "1.1.0")
    assert same.returncode == 14 and "already runs release 1.1.0" in same.stderr
    again = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
    assert again.returncode == 15 and "already runs release 1.1.0" in again.stderr
    kept = run_installer(source_tree, root, "upgrade", DEPLOY)  # this package is 1.0.0: kept, not new
    assert kept.returncode == 15 and "rollback test-classify --to 1.0.0" in kept.stderr
    assert run_installer(source_tree, root, "upgrade", "nope", "--package", str(v2_tree)).returncode == 13
    assert run_installer(source_tree, root, "upgrade", DEPLOY, "--package", "/nonexistent").returncode == 2
    # Not installed: 14, and nothing is created.
    assert run_installer(source_tree, root, "rollback", "ghost").returncode == 14 and not (root / "ghost").exists()
    empty = root.parent / "empty-root"
    assert run_installer(source_tree, empty, "upgrade", DEPLOY, "--package", str(v2_tree)).returncode == 14
    assert not (empty / DEPLOY).exists()
    assert status_json(source_tree, root)["release"] == "1.1.0"


def test_lock_held_refuses_upgrade_and_rollback_with_21(source_tree, v2_tree, root):
    import fcntl

    port = free_port()
    install(source_tree, root, port, "--stopped")
    fd = os.open(root / DEPLOY / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for args in (["upgrade", DEPLOY, "--package", str(v2_tree)], ["rollback", DEPLOY]):
            proc = run_installer(source_tree, root, *args)
            assert proc.returncode == 21 and "locked by another install.py" in proc.stderr
    finally:
        os.close(fd)


def test_stopped_deploy_switches_without_starting(source_tree, v2_tree, root):
    install(source_tree, root, free_port(), "--stopped")
    up = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
    assert up.returncode == 0 and "without starting it" in up.stdout
    st = status_json(source_tree, root)
    assert (st["state"], st["release"], st["pid"]) == ("stopped", "1.1.0", None)
    assert run_installer(source_tree, root, "start", DEPLOY).returncode == 0
    assert served_release(status_json(source_tree, root)["port"]) == "1.1.0"


def test_keep_n_prunes_the_oldest_but_never_current_or_previous(
    source_tree, v2_tree, v3_tree, tmp_path, wheelhouse, root
):
    install(source_tree, root, free_port(), "--stopped", "--keep", "2")
    assert run_installer(source_tree, root, "up", DEPLOY, "--package", str(v2_tree)).returncode == 0
    up = run_installer(source_tree, root, "up", DEPLOY, "--package", str(v3_tree))
    assert up.returncode == 0 and "pruned release 1.0.0 (keeping the last 2)" in up.stdout
    d = root / DEPLOY / "releases"
    assert sorted(p.name for p in d.iterdir()) == ["1.1.0", "1.2.0"]
    assert sorted(state_of(root)["releases"]) == ["1.1.0", "1.2.0"]
    # Back to 1.1.0: previous is now 1.2.0, and both stay with keep 2.
    assert run_installer(source_tree, root, "rb", DEPLOY).returncode == 0
    v4 = version_tree(tmp_path / "v4", wheelhouse, source_tree, "2.0.0")
    up = run_installer(source_tree, root, "up", DEPLOY, "--package", str(v4), "--keep", "2", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    doc = json.loads(up.stdout)  # only the document on stdout; progress went to stderr
    assert (doc["from"], doc["release"], doc["pruned"], doc["started"]) == ("1.1.0", "2.0.0", ["1.2.0"], False)
    # current 2.0.0, previous 1.1.0 (what ran before it); 1.2.0 goes although it is newer.
    assert sorted(p.name for p in d.iterdir()) == ["1.1.0", "2.0.0"]
    assert run_installer(source_tree, root, "install", DEPLOY, "--keep", "1").returncode == 2


def test_full_package_brings_its_own_runtime_and_rollback_uses_the_old_one(source_tree, tmp_path, wheelhouse, root):
    # Another lock file (here: a comment more) makes another runtime key: EasyDL's 完整包.
    full = version_tree(tmp_path / "full", wheelhouse, source_tree, "2.0.0")
    lock = full / "original" / "requirements.lock"
    lock.write_text(lock.read_text() + "# full package: runtime rebuilt\n")
    port = free_port()
    install(source_tree, root, port)
    # The session runtime is shared through a symlink; this root gets a real directory beside it.
    shared = (root / ".runtime").resolve()
    os.unlink(root / ".runtime")
    (root / ".runtime").mkdir()
    os.symlink(
        next(p for p in shared.iterdir() if p.is_dir() and not p.name.startswith(".")),
        root / ".runtime" / next(p for p in shared.iterdir() if p.is_dir() and not p.name.startswith(".")).name,
    )
    with Load(port, threads=2) as load:
        up = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(full))
        assert up.returncode == 0, up.stdout + up.stderr
        rb = run_installer(source_tree, root, "rollback", DEPLOY)
        assert rb.returncode == 0, rb.stdout + rb.stderr
    assert "full package: its own runtime" in up.stdout and "building runtime" in up.stdout
    assert load.failed == [] and load.ok > 0
    rels = state_of(root)["releases"]
    assert rels["1.0.0"]["venv"] != rels["2.0.0"]["venv"]
    assert (Path(rels["2.0.0"]["venv"]) / "bin" / "gunicorn").exists()
    assert served_release(port) == "1.0.0"


def legacy_master(src, root, port):
    """A running master that cannot hand its socket over (as one started by an older installer)."""
    install(src, root, port)
    conf = root / DEPLOY / "releases" / "1.0.0" / "start" / "gunicorn_conf.py"
    conf.write_text(conf.read_text() + "\n\ndef when_ready(server):\n    pass\n")
    assert run_installer(src, root, "restart", DEPLOY).returncode == 0


def test_master_without_handover_falls_back_to_stop_then_start(source_tree, v2_tree, root):
    port = free_port()
    legacy_master(source_tree, root, port)
    up = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree))
    assert up.returncode == 0, up.stdout + up.stderr
    assert "cannot hand its socket over" in up.stderr and "falling back to stop-then-start" in up.stderr
    st = status_json(source_tree, root)
    assert (st["state"], st["release"]) == ("running", "1.1.0") and served_release(port) == "1.1.0"
    assert state_of(root)["operation"] is None


def test_fallback_start_failure_starts_the_old_release_again(source_tree, v2_tree, root):
    port = free_port()
    legacy_master(source_tree, root, port)
    up = run_installer(
        source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree), env={"STANDIN_FAIL_RELEASE": "1.1.0"}
    )
    assert up.returncode == 17 and "rolled back" in up.stderr, up.stdout + up.stderr
    assert "starting 1.0.0 again" in up.stdout and "stand-in told to fail at boot" in up.stderr
    st = status_json(source_tree, root)
    assert (st["state"], st["release"]) == ("running", "1.0.0")
    assert not (root / DEPLOY / "releases" / "1.1.0").exists()


def test_fallback_where_the_old_release_does_not_start_again_says_so(source_tree, v2_tree, root):
    port = free_port()
    legacy_master(source_tree, root, port)
    up = run_installer(
        source_tree, root, "upgrade", DEPLOY, "--package", str(v2_tree), env={"STANDIN_MODE": "fail-boot"}
    )
    assert up.returncode == 17, up.stdout + up.stderr
    assert "did not start again either" in up.stderr and "keeps serving" not in up.stderr
    st = status_json(source_tree, root)
    assert (st["state"], st["release"], st["desired"]) == ("failed", "1.0.0", "running")
    assert state_of(root)["operation"] is None and not (root / DEPLOY / "releases" / "1.1.0").exists()
