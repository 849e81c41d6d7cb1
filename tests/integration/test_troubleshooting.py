"""trouble_shooting.sh against a REAL install: demo-classify (gunicorn + Paddle + EfficientNet)
installed by install.py from this repository on 0.0.0.0, licensed by the real vendor tool.

One healthy install is shared by the module; each test breaks exactly one thing, sees the FAIL
(or WARN) with the right "Try fixing it:" command, and restores what it broke.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_installer_fixtures import kill_leftovers, new_root, shared_runtime, source_tree, wheelhouse  # noqa: F401
from test_troubleshooting_helpers import (  # noqa: F401
    DEPLOY,
    DIAG,
    REPO,
    Vendor,
    find,
    install_demo,
    not_passing,
    run_diag,
    run_installer,
)

BUNDLE = "efficientnet_lite0_imagenet"


@pytest.fixture(scope="module")
def vendor(tmp_path_factory) -> Vendor:
    return Vendor(tmp_path_factory.mktemp("diag-vendor"))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory, shared_runtime, vendor):
    if not (REPO / "models" / BUNDLE / "manifest.json").is_file():
        subprocess.run(["bash", str(REPO / "download.sh")], cwd=REPO, check=True, timeout=3600)
    root = new_root(tmp_path_factory.mktemp("diag"), shared_runtime)
    port = install_demo(root, vendor)
    yield root, port
    run_installer(REPO, root, "stop", DEPLOY)
    kill_leftovers(root)


def diag(root: Path, *args: str, **kw):
    return run_diag("--root", str(root), *args, **kw)


def ensure_running(root: Path) -> None:
    proc = run_installer(REPO, root, "start", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def master_pid(root: Path) -> int:
    return int((root / DEPLOY / "run" / "gunicorn.pid").read_text())


def crash(root: Path) -> None:
    """What a crash looks like: the whole service SIGKILLed, state.json still wants it up."""
    pid = master_pid(root)
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def fixes(check: dict) -> str:
    return "\n".join(check["fix"])


def test_healthy_install_all_pass_and_text_layout(healthy):
    root, port = healthy
    rc, doc, _ = diag(root)
    assert not not_passing(doc), not_passing(doc)
    assert rc == 0
    names = {c["name"] for g in doc["groups"] for c in g["checks"]}
    assert {
        "cpu-features",
        "memory",
        "license-file",
        "key",
        "signature",
        "dates",
        "fingerprint",
        "clock",
        "journal",
        "operation",
        "release",
        "runtime",
        "process",
        "port",
        "health",
        "ready",
        "inference",
        "reachable",
        "log-tracebacks",
        "log-oom",
        f"model {BUNDLE}",
        "python-deps",
    } <= names
    assert "cat" in find(doc, "inference")["detail"]  # a real ImageNet answer for the bundled cat photo
    assert "192.0.2" in find(doc, "reachable")["detail"] or "answers on" in find(doc, "reachable")["detail"]
    assert doc["summary"]["ok"] is True and doc["summary"]["fail"] == 0
    text = subprocess.run(["bash", str(DIAG), "--root", str(root)], capture_output=True, text=True, timeout=300)
    assert text.returncode == rc
    assert f"Checking deploy {DEPLOY} ({root / DEPLOY}) ..." in text.stdout
    assert f"Checking deploy {DEPLOY} ({root / DEPLOY}) ... Finished" in text.stdout
    assert "  PASS  inference: POST /demo-classify/ImageClassification with cat.jpg" in text.stdout
    assert "Summary: " in text.stdout and " 0 FAIL" in text.stdout


def test_crashed_service_fails_with_start_command(healthy):
    root, port = healthy
    crash(root)
    try:
        rc, doc, _ = diag(root)
        assert rc == 1
        proc = find(doc, "process")
        assert proc["status"] == "FAIL" and "want up" in proc["detail"]
        assert f"--root {root} start {DEPLOY}" in fixes(proc)
        assert all(c["status"] == "PASS" for c in [find(doc, "port")])  # free again for the restart
        assert not any(c["name"] in ("health", "ready", "inference") for g in doc["groups"] for c in g["checks"])
    finally:
        ensure_running(root)


def test_port_taken_by_another_program(healthy):
    root, port = healthy
    crash(root)
    squatter = subprocess.Popen(
        [
            "python3",
            "-c",
            "import socket,time; s=socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(120)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        rc, doc, _ = diag(root)
        assert rc == 1
        p = find(doc, "port")
        assert p["status"] == "FAIL" and f"pid {squatter.pid}" in p["detail"] and "cannot start" in p["detail"]
        assert f"ss -ltnp 'sport = :{port}'" in fixes(p) and f"kill {squatter.pid}" in fixes(p)
    finally:
        squatter.kill()
        squatter.wait()
        ensure_running(root)


def test_corrupt_model_file_fails_with_copy_command(healthy):
    root, _ = healthy
    f = root / DEPLOY / "releases" / "1.0.0" / "models" / BUNDLE / "inference.pdiparams"
    size = f.stat().st_size
    with open(f, "r+b") as fh:
        fh.seek(size // 2)
        b = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    try:
        rc, doc, _ = diag(root)
        m = find(doc, f"model {BUNDLE}")
        assert rc == 1 and m["status"] == "FAIL"
        assert m["lines"] == ["inference.pdiparams: sha256 differs from the manifest"]
        assert f"cp {REPO / 'models' / BUNDLE / 'inference.pdiparams'} {f}" in fixes(m)
        # The hint is exact: running it repairs the file.
        subprocess.run(m["fix"][0], shell=True, check=True)
        rc, doc, _ = diag(root)
        assert find(doc, f"model {BUNDLE}")["status"] == "PASS"
    finally:
        if f.read_bytes() != (REPO / "models" / BUNDLE / "inference.pdiparams").read_bytes():
            f.write_bytes((REPO / "models" / BUNDLE / "inference.pdiparams").read_bytes())


@pytest.fixture
def swap_license(healthy):
    root, _ = healthy
    lic = root / "licenses" / "license.lic"
    good = lic.read_bytes()

    def swap(data: bytes) -> None:
        lic.write_bytes(data)

    yield swap
    lic.write_bytes(good)


def test_expired_license(healthy, vendor, swap_license):
    root, _ = healthy
    swap_license(vendor.license(now=time.time() - 40 * 86400, days=30))
    rc, doc, _ = diag(root)
    d = find(doc, "dates")
    assert rc == 1 and d["status"] == "FAIL" and d["detail"].startswith("expired: expired at")
    assert f"--root {root} lu NEW_LICENSE" in fixes(d)
    assert find(doc, "signature")["status"] == "PASS"  # still a genuine file
    assert find(doc, "ready")["status"] == "FAIL" and "expired" in find(doc, "ready")["detail"]


def test_not_yet_valid_license(healthy, vendor, swap_license):
    root, _ = healthy
    swap_license(vendor.license(not_before=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86400))))
    rc, doc, _ = diag(root)
    d = find(doc, "dates")
    assert rc == 1 and d["status"] == "FAIL" and d["detail"].startswith("not-yet-valid: valid from")
    assert "date -u" in fixes(d)


def test_license_of_another_machine_names_changed_components(healthy, vendor, swap_license):
    root, _ = healthy
    swap_license(vendor.license(change=("machine_id", "mac")))
    rc, doc, _ = diag(root)
    fp = find(doc, "fingerprint")
    assert rc == 1 and fp["status"] == "FAIL" and fp["detail"].startswith("wrong-machine:")
    assert "machine_id: mismatch (required)" in fp["lines"] and "mac: mismatch" in fp["lines"]
    assert "changed: mac, machine_id" in fp["detail"]
    assert f"--root {root} fingerprint --diff {root}/licenses/license.lic" in fixes(fp)
    # The runtime agrees and is not reported twice.
    assert not [c for c in doc["groups"][2]["checks"] if c["name"].startswith("verdict") and c["status"] == "FAIL"]


def test_one_changed_component_only_warns(healthy, vendor, swap_license):
    root, _ = healthy
    swap_license(vendor.license(change=("mac",)))
    rc, doc, _ = diag(root)
    fp = find(doc, "fingerprint")
    assert fp["status"] == "WARN" and "changed: mac" in fp["detail"]


def test_license_signed_by_an_unknown_key(healthy, vendor, swap_license, tmp_path):
    root, _ = healthy
    other = Vendor(tmp_path / "other")
    swap_license(other.license())
    rc, doc, _ = diag(root)
    k = find(doc, "key")
    assert rc == 1 and k["status"] == "FAIL" and k["detail"].startswith("unknown-key")


def test_altered_license_fails_the_signature(healthy, vendor, swap_license):
    import base64
    import json as _json

    root, _ = healthy
    lines = vendor.license().decode().strip().splitlines()
    env = _json.loads(base64.b64decode("".join(lines[1:-1])))
    sig = bytearray(base64.b64decode(env["sig"]))
    sig[0] ^= 1
    env["sig"] = base64.b64encode(bytes(sig)).decode()
    body = base64.b64encode(_json.dumps(env).encode()).decode()
    swap_license("\n".join([lines[0]] + [body[i : i + 76] for i in range(0, len(body), 76)] + [lines[-1]]).encode())
    rc, doc, _ = diag(root)
    s = find(doc, "signature")
    assert rc == 1 and s["status"] == "FAIL" and s["detail"].startswith("bad-signature")
    assert find(doc, "license-file")["status"] == "PASS"  # well-formed; only Ed25519 tells


def test_clock_behind_the_high_water_mark(healthy, tmp_path):
    """The machine-wide mark is swapped for one 2 h ahead in a private mount namespace only."""
    from visionpack.licensing.clock import ClockMark

    root, _ = healthy
    state = tmp_path / "state"
    state.mkdir()
    mark = ClockMark(state)
    for name in ("clock.mark", ".clock.mark.2"):
        (state / name).write_bytes(mark.encode(int(time.time()) + 7200))
    prefix = ("unshare", "-m", "sh", "-c", f'mount --bind "{state}" /var/lib/visionpack/state && exec "$@"', "sh")
    rc, doc, _ = diag(root, prefix=prefix)
    c = find(doc, "clock")
    assert (
        rc == 1
        and c["status"] == "FAIL"
        and c["detail"].startswith("clock-rollback")
        and "120 min behind" in c["detail"]
    )
    assert "timedatectl set-ntp true" in fixes(c)


@pytest.mark.parametrize(
    "line,check,fix",
    [
        (
            'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom',
            "log-tracebacks",
            "grep -n -A 40 'Traceback'",
        ),
        ("[{ts} +0000] [77] [CRITICAL] WORKER TIMEOUT (pid:78)", "log-worker-timeouts", "grep -n '^timeout'"),
        ("[{ts} +0000] [77] [ERROR] Worker (pid:78) was sent SIGKILL! Perhaps out of memory?", "log-oom", "free -m"),
        (
            "{ts},123 [78] ERROR visionpack.license: license check failed for demo-classify/classification: expired: x",
            "log-license",
            "fingerprint --diff",
        ),
    ],
)
def test_key_errors_in_recent_logs(healthy, line, check, fix):
    root, _ = healthy
    log = root / DEPLOY / "logs" / "error.log"
    size = log.stat().st_size
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    old = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 3 * 86400))
    # Earlier tests made the service log real license failures; count on top of what is there.
    rc, doc, _ = diag(root, "--since", "1")
    before = find(doc, check)["data"].get("count", 0)
    try:
        with open(log, "a") as fh:
            fh.write(f"[{old} +0000] [1] [INFO] long ago\n" + line.format(ts=old) + "\n")
        rc, doc, _ = diag(root, "--since", "1")
        assert find(doc, check)["data"].get("count", 0) == before, "a 3-day-old error is not recent"
        with open(log, "a") as fh:
            fh.write(f"[{ts} +0000] [77] [ERROR] now\n" + line.format(ts=ts) + "\n")
        rc, doc, _ = diag(root, "--since", "1")
        c = find(doc, check)
        assert c["status"] == "WARN" and c["data"]["count"] == before + 1 and fix in fixes(c)
        assert c["lines"] and c["lines"][-1].startswith("error.log: ")
        if check == "log-tracebacks":
            assert c["lines"][-1].endswith("ValueError: boom")
    finally:
        with open(log, "r+b") as fh:
            fh.truncate(size)


def test_broken_current_symlink_and_its_exact_fix(healthy):
    root, _ = healthy
    cur = root / DEPLOY / "current"
    os.remove(cur)
    os.symlink("releases/9.9.9", cur)
    try:
        rc, doc, _ = diag(root)
        r = find(doc, "release")
        assert rc == 1 and r["status"] == "FAIL" and "points to nothing" in r["detail"]
        assert r["fix"] == [f"ln -sfn releases/1.0.0 {cur}"]
        subprocess.run(r["fix"][0], shell=True, check=True)
        rc, doc, _ = diag(root)
        assert find(doc, "release")["status"] == "PASS"
    finally:
        if os.readlink(cur) != "releases/1.0.0":
            os.remove(cur)
            os.symlink("releases/1.0.0", cur)


def test_operation_left_in_progress(healthy):
    import json as _json

    root, _ = healthy
    state_file = root / DEPLOY / "state.json"
    good = state_file.read_text()
    state = _json.loads(good)
    dead = subprocess.Popen(["true"])
    dead.wait()
    state["operation"] = {"op": "restart", "step": "stop", "started_at": "2026-01-01T00:00:00Z", "pid": dead.pid}
    state_file.write_text(_json.dumps(state))
    try:
        rc, doc, _ = diag(root)
        o = find(doc, "operation")
        assert rc == 1 and o["status"] == "FAIL" and "interrupted 'restart' stopped at step 'stop'" in o["detail"]
        assert o["fix"] == [f"python3 {REPO}/package/Install/install.py --root {root} restart {DEPLOY}"]
        state_file.write_text("{not json")
        rc, doc, _ = diag(root)
        j = find(doc, "journal")
        assert j["status"] == "FAIL" and "not valid JSON" in j["detail"] and "json.tool" in fixes(j)
    finally:
        state_file.write_text(good)


def _site_packages(root: Path) -> Path:
    return next((root / ".runtime").glob("*/lib/python3*/site-packages"))


def test_missing_package_in_runtime_venv(healthy):
    root, _ = healthy
    flask = _site_packages(root) / "flask"
    flask.rename(flask.with_name("flask.diag-broken"))
    try:
        rc, doc, _ = diag(root)
        d = find(doc, "python-deps")
        assert rc == 1 and d["status"] == "FAIL" and "flask" in d["detail"]
        assert any(ln.startswith("flask: ModuleNotFoundError") for ln in d["lines"])
        assert "import flask" in fixes(d)
    finally:
        flask.with_name("flask.diag-broken").rename(flask)


def test_broken_runtime_python(healthy):
    """Runtime unusable: deps FAIL 'runtime broken', the license is still checked with the stdlib."""
    root, _ = healthy
    py = next((root / ".runtime").glob("*/bin/python"))
    moved = py.with_name("python.diag-broken")
    py.rename(moved)
    try:
        rc, doc, _ = diag(root)
        assert rc == 1
        d = find(doc, "python-deps")
        assert d["status"] == "FAIL" and d["detail"].startswith("runtime broken")
        assert ".broken" in fixes(d) and f"remove {DEPLOY}" in fixes(d)
        s = find(doc, "signature")
        assert s["status"] == "WARN" and s["detail"] == "license signature not checked (runtime unavailable)"
        for name in ("license-file", "key", "dates", "fingerprint", "clock"):
            assert find(doc, name)["status"] == "PASS", name
    finally:
        moved.rename(py)


def test_stale_pid_file_naming_another_program(healthy):
    root, _ = healthy
    pidfile = root / DEPLOY / "run" / "gunicorn.pid"
    good = pidfile.read_text()
    other = subprocess.Popen(["sleep", "60"])
    pidfile.write_text(f"{other.pid}\n")
    try:
        rc, doc, _ = diag(root)
        assert find(doc, "process")["status"] == "PASS"  # found in /proc by its command line
        p = find(doc, "pidfile")
        assert p["status"] == "WARN" and f"names pid {other.pid}, which is another program (sleep 60)" in p["detail"]
        assert p["fix"] == [f"echo {good.strip()} > {pidfile}"]
    finally:
        other.kill()
        other.wait()
        pidfile.write_text(good)


def test_deliberately_stopped_deploy_passes(healthy):
    root, port = healthy
    rc, doc, _ = diag(root, "--since", "1")
    tracebacks = find(doc, "log-tracebacks")["data"].get("count", 0)
    assert run_installer(REPO, root, "stop", DEPLOY).returncode == 0
    try:
        rc, doc, _ = diag(root, "--since", "1")
        assert rc == 0, not_passing(doc)
        # Paddle may print a "C++ Traceback" for the SIGTERM of a stop; that is not an error
        # (tests/unit/vp_diag/test_logs.py holds the text such a stop left in a real error.log).
        assert find(doc, "log-tracebacks")["data"].get("count", 0) == tracebacks
        assert find(doc, "process")["detail"].startswith("stopped, as recorded")
        assert find(doc, "port")["detail"] == f"port {port} is free for when the deploy starts"
        assert not [c for g in doc["groups"] for c in g["checks"] if c["name"] in ("health", "inference")]
    finally:
        ensure_running(root)


def test_missing_rollback_target_and_orphan_release(healthy):
    import json as _json
    import shutil

    root, _ = healthy
    state_file = root / DEPLOY / "state.json"
    good = state_file.read_text()
    state = _json.loads(good)
    state["releases"]["0.9.0"] = {"installed_at": "2026-01-01T00:00:00Z", "activated_at": "2026-01-01T00:00:00Z"}
    state["history"] = [{"release": "0.9.0", "at": "2026-01-01T00:00:00Z", "op": "install"}] + state.get("history", [])
    state_file.write_text(_json.dumps(state))
    orphan = root / DEPLOY / "releases" / "0.8.0"
    orphan.mkdir()
    try:
        rc, doc, _ = diag(root)
        r = find(doc, "rollback-target")
        assert r["status"] == "WARN" and "would go to 0.9.0" in r["detail"]
        assert r["lines"] == [f"{root / DEPLOY / 'releases' / '0.9.0'} is missing"]
        k = find(doc, "kept-releases")
        assert k["status"] == "WARN" and f"rm -rf {orphan}" in k["fix"]
        assert find(doc, "masters")["detail"] == "one master, serving release 1.0.0"
    finally:
        state_file.write_text(good)
        shutil.rmtree(orphan)
