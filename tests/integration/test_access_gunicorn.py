"""API keys against the real service: gunicorn with the product's gunicorn_conf.py (our HTTP front),
the real app, the real Paddle engine on the demo classification bundle, two workers, and the real
``install.py apikey`` commands changing the deploy's data/access.json while it serves.

Peers: the tests on the host talk over loopback, so they exercise the ``key`` policy (which
wants a key from every peer, loopback included) and revocation for real.
``test_a_real_non_loopback_peer_needs_a_key`` runs server and client in a private network
namespace (``unshare -n``: loopback plus the address 10.9.9.1 on lo, nothing reaches the host's
network) so that a real TCP peer that is not loopback meets the ``loopback`` policy; every other
combination of peer and policy is in the unit tier (REMOTE_ADDR simulated with Flask's client).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEPLOY = "demo-classify"
CAT = base64.b64encode((REPO / "package" / "samples" / "cat.jpg").read_bytes()).decode()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_deploy(root: Path, port: int, host: str = "127.0.0.1") -> Path:
    """<root>/<deploy>/ as install.py lays it out, as far as the service and 'apikey' look:
    state.json (so 'apikey' finds the deploy), data/, run/, logs/ and a config.yml."""
    d = root / DEPLOY
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"schema": 1, "service": "classification", "release": "test"}))
    cfg = {
        "deploy": DEPLOY,
        "service": "classification",
        "host": host,
        "port": port,
        "workers": 2,
        "threads_per_worker": 1,
        "models": {"classifier": str(REPO / "models" / "efficientnet_lite0_imagenet")},
        "data_dir": str(d / "data"),
        "run_dir": str(d / "run"),
        "log_dir": str(d / "logs"),
    }
    (d / "config.yml").write_text(yaml.safe_dump(cfg))
    return d / "config.yml"


def server_cmd() -> list[str]:
    return [
        str(VENV_BIN / "gunicorn"),
        "-c",
        str(REPO / "start" / "gunicorn_conf.py"),
        "visionpack.api.app:create_app()",
    ]


def server_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}
    return {**env, "VISIONPACK_CONFIG": str(config), "PYTHONPATH": str(REPO / "package"), "GLOG_minloglevel": "2"}


def apikey(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The operator's command, as a separate process like in real life."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "package" / "Install" / "install.py"), "--root", str(root), "apikey", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def request(
    port: int, path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 60
) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def classify(port: int, key: str | None = None, path: str = f"/{DEPLOY}/ImageClassification") -> tuple[int, dict]:
    return request(port, path, {"image": CAT, "top_num": 1}, {"X-API-Key": key} if key else None)


def pids(run_dir: Path) -> tuple[int, list[int]]:
    master = int((run_dir / "gunicorn.pid").read_text().strip())
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            kids.append(int(stat.parent.name))
    return master, sorted(kids)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("access-root")
    port = free_port()
    config = write_deploy(root, port)
    proc = subprocess.Popen(
        server_cmd(),
        env=server_env(config),
        cwd=str(root / DEPLOY),
        stdin=subprocess.DEVNULL,
        stdout=open(root / "console.log", "wb"),  # noqa: SIM115  (the child writes it for its whole life)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (root / "console.log").read_text()[-3000:]
            try:
                if request(port, "/ready", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "service not ready in 300 s"
            time.sleep(0.3)
        # Both workers must be up (the ready one may be the first of two).
        while len(pids(root / DEPLOY / "run")[1]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        yield {
            "root": root,
            "port": port,
            "data": root / DEPLOY / "data",
            "logs": root / DEPLOY / "logs",
            "run": root / DEPLOY / "run",
        }
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        except ProcessLookupError:  # it failed to boot: the assertion above says why
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def fresh(service):
    """Each test starts from the defaults: no access.json, the service back to default policies."""
    (service["data"] / "access.json").unlink(missing_ok=True)
    return service


def test_policy_changes_apply_to_every_worker_at_once(fresh):
    root, port = fresh["root"], fresh["port"]
    before = pids(fresh["run"])
    assert classify(port)[0] == 200  # infer open by default
    key = json.loads(apikey(root, "create", DEPLOY, "--name", "it", "--json").stdout)["key"]
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    # New connection per request: the two workers take turns; every one of them must refuse.
    answers = [classify(port) for _ in range(12)]
    assert all(s == 401 and b["error_code"] == 110 for s, b in answers), answers
    status, body = classify(port, path="/image-classification")
    assert (status, body["errorCode"]) == (401, 401)
    assert all(classify(port, key)[0] == 200 for _ in range(6))
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "loopback")  # we are loopback
    assert all(classify(port)[0] == 200 for _ in range(6))
    assert pids(fresh["run"]) == before  # no restart, no worker replaced


def test_three_ways_to_send_the_key_over_the_wire(fresh):
    root, port = fresh["root"], fresh["port"]
    key = json.loads(apikey(root, "create", DEPLOY, "--json").stdout)["key"]
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    body = {"image": CAT, "top_num": 1}
    path = f"/{DEPLOY}/ImageClassification"
    assert request(port, path, body, {"Authorization": f"Bearer {key}"})[0] == 200
    assert request(port, path, body, {"X-API-Key": key})[0] == 200
    assert request(port, f"{path}?access_token={key}", body)[0] == 200
    assert request(port, f"{path}?access_token=vpk_wrong", body)[1]["error_code"] == 110
    log = (fresh["logs"] / "error.log").read_text(errors="replace")
    assert key not in log and "access-token-invalid" in log
    # The access log names the request target, but not the key in it (written after the answer: wait for it).
    deadline = time.monotonic() + 30
    while "access_token=***" not in (access := (fresh["logs"] / "access.log").read_text(errors="replace")):
        assert time.monotonic() < deadline, access[-2000:]
        time.sleep(0.1)
    assert key not in access and "vpk_wrong" not in access


def test_a_scope_it_lacks_is_refused_with_6(fresh):
    root, port = fresh["root"], fresh["port"]
    ops = json.loads(apikey(root, "create", DEPLOY, "--scope", "ops", "--json").stdout)
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    status, body = classify(port, ops["key"])
    assert (status, body["error_code"], body["error_msg"]) == (403, 6, "No permission to access data")
    assert f"key_id={ops['id']}" in (fresh["logs"] / "error.log").read_text(errors="replace")


def test_ready_and_metrics_under_ops_key(fresh):
    root, port = fresh["root"], fresh["port"]
    status, body = request(port, "/ready")
    assert status == 200 and body["deploy"] == DEPLOY  # loopback: the detail
    ops = json.loads(apikey(root, "create", DEPLOY, "--scope", "ops", "--json").stdout)["key"]
    apikey(root, "policy", DEPLOY, "--scope", "ops", "--policy", "key")
    assert request(port, "/ready") == (200, {"ready": True})
    status, body = request(port, "/ready", headers={"Authorization": f"Bearer {ops}"})
    assert status == 200 and body["deploy"] == DEPLOY and body["models"]
    status, body = request(port, "/metrics")
    assert (status, body["error_code"]) == (401, 110)
    status, text = request(port, "/metrics", headers={"X-API-Key": ops})
    assert status == 200 and "visionpack" in text
    assert request(port, "/health")[0] == 200


def test_revocation_under_load_no_restart_no_failure(fresh):
    """Four clients hammer with one key while it is revoked: every answer is a result or 110,
    none fails otherwise, and no request sent after 'apikey revoke' returned gets a result."""
    root, port = fresh["root"], fresh["port"]
    doc = json.loads(apikey(root, "create", DEPLOY, "--name", "load", "--json").stdout)
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    before = pids(fresh["run"])
    results: list[tuple[float, int, object]] = []  # (sent at, status, error_code or "ok")
    lock = threading.Lock()
    stop = threading.Event()
    got_ok, got_refused = threading.Event(), threading.Event()

    def client():
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status, body = classify(port, doc["key"])
                outcome = "ok" if status == 200 and "results" in body else body.get("error_code", body)
            except OSError as exc:  # must not happen: recorded and asserted below
                status, outcome = -1, repr(exc)
            with lock:
                results.append((sent, status, outcome))
                oks = sum(1 for r in results if r[2] == "ok")
                late = sum(1 for r in results if revoked_at[0] is not None and r[0] > revoked_at[0])
            if oks >= 8:
                got_ok.set()
            if late >= 12:
                got_refused.set()

    revoked_at: list[float | None] = [None]
    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        assert got_ok.wait(180), results[-5:]
        apikey(root, "revoke", DEPLOY, doc["id"])
        revoked_at[0] = time.monotonic()
        assert got_refused.wait(180), results[-5:]
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    odd = [r for r in results if not (r[1] == 200 and r[2] == "ok") and not (r[1] == 401 and r[2] == 110)]
    assert odd == []
    after = [r for r in results if r[0] > revoked_at[0]]
    assert len(after) >= 12 and all(r[2] == 110 for r in after)
    assert sum(1 for r in results if r[2] == "ok") >= 8
    assert pids(fresh["run"]) == before


def test_a_broken_file_keeps_the_last_good_state(fresh):
    root, port = fresh["root"], fresh["port"]
    apikey(root, "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    assert classify(port)[0] == 401
    (fresh["data"] / "access.json").write_text("{ half written by a careless editor")
    assert all(classify(port)[0] == 401 for _ in range(4))  # still key, in every worker
    log = (fresh["logs"] / "error.log").read_text(errors="replace")
    assert "keeping the last good policies and keys" in log


# --- a real non-loopback peer, in a private network namespace ------------------------------

NETNS_DRIVER = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time, urllib.request, urllib.error, http.client
    spec = json.loads(sys.argv[1])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", "10.9.9.1/32", "dev", "lo"], check=True)
    server = subprocess.Popen(spec["cmd"], env=spec["env"], cwd=spec["cwd"], stdout=open(spec["log"], "wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)

    def get(host, path, headers=None, source=None):
        conn = http.client.HTTPConnection(host, spec["port"], timeout=60,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            raw = r.read()
            try:
                return [r.status, json.loads(raw)]
            except ValueError:
                return [r.status, raw.decode()[:200]]
        finally:
            conn.close()

    out = {}
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                sys.exit("gunicorn exited during start")
            try:
                if get("127.0.0.1", "/health")[0] == 200 and get("127.0.0.1", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("not ready")
            time.sleep(0.3)
        key = spec["ops_key"]
        out["local_ready"] = get("127.0.0.1", "/ready")
        out["local_metrics"] = get("127.0.0.1", "/metrics")[0]
        out["remote_ready"] = get("10.9.9.1", "/ready", source="10.9.9.1")
        out["remote_metrics"] = get("10.9.9.1", "/metrics", source="10.9.9.1")
        out["remote_metrics_key"] = get("10.9.9.1", "/metrics", {"X-API-Key": key}, source="10.9.9.1")[0]
        out["remote_ready_key"] = get("10.9.9.1", "/ready", {"Authorization": "Bearer " + key}, source="10.9.9.1")
        out["remote_health"] = get("10.9.9.1", "/health", source="10.9.9.1")[0]
        print("RESULT " + json.dumps(out))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
""")


def test_a_real_non_loopback_peer_needs_a_key(tmp_path):
    root = tmp_path / "root"
    port = free_port()
    config = write_deploy(root, port, host="0.0.0.0")
    key = json.loads(apikey(root, "create", DEPLOY, "--scope", "ops", "--json").stdout)["key"]
    spec = {
        "cmd": server_cmd(),
        "env": server_env(config),
        "cwd": str(root / DEPLOY),
        "port": port,
        "log": str(tmp_path / "console.log"),
        "ops_key": key,
    }
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", NETNS_DRIVER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=400,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:] + (tmp_path / "console.log").read_text()[-3000:]
    out = json.loads(line[len("RESULT ") :])
    # ops is loopback by default: this machine sees the detail, 10.9.9.1 only the verdict.
    assert out["local_ready"][0] == 200 and out["local_ready"][1]["deploy"] == DEPLOY
    assert out["local_metrics"] == 200
    assert out["remote_ready"] == [200, {"ready": True}]
    assert out["remote_metrics"][0] == 401 and out["remote_metrics"][1]["error_code"] == 110
    assert out["remote_metrics_key"] == 200
    assert out["remote_ready_key"][0] == 200 and out["remote_ready_key"][1]["deploy"] == DEPLOY
    assert out["remote_health"] == 200
    assert "peer=10.9.9.1" in (root / DEPLOY / "logs" / "error.log").read_text(errors="replace")
