"""Licensing as an operator lives it, with the real service: fingerprint, lu, hot swap under load,
refusals that change nothing, expiry answered with 337000, the machine-wide instance limit.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_installer_fixtures import (  # noqa: E402,F401
    REPO,
    free_port,
    kill_leftovers,
    new_root,
    post_json,
    run_installer,
    shared_runtime,
    source_tree,
    wheelhouse,
)

DEPLOY = "demo-classify"
CAT = base64.b64encode((REPO / "package" / "samples" / "cat.jpg").read_bytes()).decode()


class Vendor:
    """The vendor's side, played with the real vendor tool and a throwaway key pair."""

    def __init__(self, base: Path, python: Path):
        self.base, self.python = base, python
        self.tool = REPO / "vendor" / "visionpack_vendor.py"
        self.run("keygen", "--out", base / "keys", "--reuse")
        self.key = next((base / "keys").glob("*.key"))
        self.pub = next((base / "keys").glob("*.pub"))

    def run(self, *args) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.python), str(self.tool), *map(str, args)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def issue(self, request: Path, name: str, *extra) -> Path:
        out = self.base / name
        self.run(
            "issue",
            "--key",
            self.key,
            "--request",
            request,
            "--out",
            out,
            "--customer",
            "e2e",
            "--instances",
            "64",
            *extra,
        )
        return out


def installer(root: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    return run_installer(REPO, root, *args, timeout=timeout)


@pytest.fixture(scope="module")
def licensed(tmp_path_factory, shared_runtime):
    """A root running demo-classify under a trial license installed with fingerprint + lu."""
    base = tmp_path_factory.mktemp("lic")
    root = new_root(base, shared_runtime)
    vendor = Vendor(base / "vendor", next(shared_runtime.glob("*/bin/python")))
    request = base / "request.json"
    proc = installer(root, "fingerprint", "--out", request)
    assert proc.returncode == 0, proc.stderr
    assert "machine_id" in json.loads(request.read_text())["components"]
    (root / "licenses").mkdir(exist_ok=True)
    shutil.copy2(vendor.pub, root / "licenses" / vendor.pub.name)  # as the package would ship it
    trial = vendor.issue(request, "trial.lic", "--days", "30")
    proc = installer(root, "lu", trial)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "License update successfully" in proc.stdout
    port = free_port()
    proc = installer(root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {"root": root, "port": port, "vendor": vendor, "request": request, "base": base}
    installer(root, "stop", DEPLOY)
    kill_leftovers(root)


def classify(port: int) -> tuple[int, dict]:
    return post_json(port, f"/{DEPLOY}/ImageClassification", {"image": CAT, "top_num": 1}, timeout=60)


def ready(port: int) -> dict:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/ready", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def test_status_shows_days_left(licensed):
    proc = installer(licensed["root"], "status", DEPLOY, "--json")
    lic = json.loads(proc.stdout)["deploys"][0]["license"]
    assert lic["ok"] is True and 28 <= lic["days_left"] <= 30


def test_lu_swaps_the_license_under_load_with_zero_failed_requests(licensed):
    port, root = licensed["port"], licensed["root"]
    pid_before = json.loads(installer(root, "status", DEPLOY, "--json").stdout)["deploys"][0]["pid"]
    results: list[tuple[int, dict]] = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            results.append(classify(port))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(2)
    renewal = licensed["vendor"].issue(licensed["request"], "renewal.lic", "--days", "90")
    proc = installer(root, "lu", renewal)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(60)
    assert proc.returncode == 0, proc.stderr
    failed = [r for r in results if r[0] != 200 or "results" not in r[1]]
    assert len(results) >= 5 and failed == []
    # Picked up without a restart: same master, and /ready reports the new license.
    lic = ready(port)["license"]
    assert 88 <= lic["days_left"] <= 90
    assert json.loads(installer(root, "status", DEPLOY, "--json").stdout)["deploys"][0]["pid"] == pid_before
    assert (root / "licenses" / "license.lic.prev").exists()


@pytest.mark.parametrize("make_bad", ["other_vendor", "other_machine", "truncated"])
def test_a_bad_license_changes_nothing_and_says_why(licensed, tmp_path, make_bad):
    root = licensed["root"]
    current = (root / "licenses" / "license.lic").read_bytes()
    if make_bad == "other_vendor":
        other = Vendor(tmp_path / "other", licensed["vendor"].python)
        bad, reason = other.issue(licensed["request"], "x.lic"), "not a vendor key"
    elif make_bad == "other_machine":
        req = json.loads(licensed["request"].read_text())
        req["components"] = {k: ("0" * 64 if v else v) for k, v in req["components"].items()}
        (tmp_path / "req.json").write_text(json.dumps(req))
        bad, reason = licensed["vendor"].issue(tmp_path / "req.json", "y.lic"), "machine"
    else:
        bad, reason = tmp_path / "t.lic", "malformed"
        bad.write_bytes(current[: len(current) // 2])
    proc = installer(root, "lu", bad)
    assert proc.returncode == 20
    assert reason in proc.stderr
    assert (root / "licenses" / "license.lic").read_bytes() == current
    assert classify(licensed["port"])[0] == 200


def test_expired_license_answers_337000_and_ready_says_why(licensed):
    root, port = licensed["root"], licensed["port"]
    good = (root / "licenses" / "license.lic").read_bytes()
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 10 * 86400))
    expired = licensed["vendor"].issue(licensed["request"], "expired.lic", "--days", "2", "--not-before", past)
    # Time passing is simulated by placing an already-expired file, as the clock would make it.
    tmp = root / "licenses" / ".swap"
    shutil.copyfile(expired, tmp)
    os.replace(tmp, root / "licenses" / "license.lic")
    try:
        status, body = classify(port)
        assert (status, body["error_code"], body["error_msg"]) == (403, 337000, "Auth check failed")
        status, body = post_json(port, "/image-classification", {"image": CAT}, timeout=60)
        assert status == 403 and body["errorCode"] == 403
        info = ready(port)
        assert info["ready"] is False and info["license"]["reason"] == "expired"
        log = (root / DEPLOY / "logs" / "error.log").read_text(errors="replace")
        assert "expired" in log
    finally:
        tmp.write_bytes(good)
        os.replace(tmp, root / "licenses" / "license.lic")
    assert classify(port)[0] == 200


def test_install_refuses_an_unlicensed_deploy_but_installs_stopped(tmp_path, shared_runtime):
    root = new_root(tmp_path, shared_runtime)
    port = str(free_port())
    proc = installer(root, "install", DEPLOY, "--host", "127.0.0.1", "--port", port)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert "license" in proc.stderr
    kill_leftovers(root)


def test_instance_limit_refuses_the_one_over(licensed, tmp_path, shared_runtime):
    """Slots are machine-wide: a second root's service is one more instance."""
    from visionpack.licensing import instances

    running = instances.count()
    # Exactly the instances already running (ours among them): the next start is one too many.
    limited = licensed["base"] / "limited.lic"
    licensed["vendor"].run(
        "issue",
        "--key",
        licensed["vendor"].key,
        "--request",
        licensed["request"],
        "--out",
        limited,
        "--instances",
        str(running),
        "--days",
        "30",
        "--customer",
        "e2e",
    )
    root2 = new_root(tmp_path, shared_runtime)
    (root2 / "licenses").mkdir()
    shutil.copy2(licensed["vendor"].pub, root2 / "licenses" / licensed["vendor"].pub.name)
    assert installer(root2, "lu", limited).returncode == 0
    proc = installer(root2, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(free_port()))
    kill_leftovers(root2)
    assert proc.returncode == 20, proc.stdout + proc.stderr
    assert "instance-limit" in proc.stderr or "already run" in proc.stderr


def test_lu_works_from_a_system_python_without_cryptography(licensed, tmp_path):
    """Offline servers may lack 'cryptography': lu re-runs itself in the runtime venv."""
    bare = tmp_path / "bare"
    subprocess.run(
        [
            sys.executable if not shutil.which("python3") else shutil.which("python3"),
            "-m",
            "venv",
            "--without-pip",
            str(bare),
        ],
        check=True,
    )
    probe = subprocess.run([str(bare / "bin" / "python"), "-c", "import cryptography"], capture_output=True)
    assert probe.returncode != 0  # really without it
    renewal = licensed["vendor"].issue(licensed["request"], "renewal2.lic", "--days", "60")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
    proc = subprocess.run(
        [
            str(bare / "bin" / "python"),
            str(REPO / "package" / "Install" / "install.py"),
            "--root",
            str(licensed["root"]),
            "lu",
            str(renewal),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "License update successfully" in proc.stdout
    status = subprocess.run(
        [
            str(bare / "bin" / "python"),
            str(REPO / "package" / "Install" / "install.py"),
            "--root",
            str(licensed["root"]),
            "status",
            DEPLOY,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lic = json.loads(status.stdout)["deploys"][0]["license"]
    assert lic["ok"] is True and 58 <= lic["days_left"] <= 60
