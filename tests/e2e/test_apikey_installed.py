"""``install.py apikey`` on a really installed demo-classify (the installer, the release layout, the
service user when root, real gunicorn with our front, Paddle on EfficientNet-Lite0), and upgrade /
rollback while the operator has set inference and ops to ``key``: the installer proves each release
with its own one-off key (access/probe.py), leaves no key behind, and the operator's keys and
policies survive both switches (they live in data/).

One install for the module; the runtime is the session's shared one. Clients are on loopback
(the ``key`` policy wants a key from loopback too); non-loopback peers are covered by
tests/integration/test_access_gunicorn.py (network namespace) and the unit tier.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pwd
import stat
import sys
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


def _bench_upgrade():
    spec = importlib.util.spec_from_file_location("bench_upgrade_helpers", REPO / "benchmarks" / "bench_upgrade.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def installer(site: dict, *args: str, ok: bool = True):
    proc = run_installer(REPO, site["root"], *args, timeout=900)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def classify(site: dict, key: str | None = None) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{site['port']}/{DEPLOY}/ImageClassification",
        data=json.dumps({"image": CAT, "top_num": 1}).encode(),
        headers={"Content-Type": "application/json", **({"X-API-Key": key} if key else {})},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def site(tmp_path_factory, shared_runtime):
    work = tmp_path_factory.mktemp("apikey-e2e")
    root = new_root(work, shared_runtime)
    bench = _bench_upgrade()
    bench.license_root(root, work)
    port = free_port()
    s = {"root": root, "port": port, "work": work, "bench": bench, "data": root / DEPLOY / "data"}
    installer(s, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port), "--timeout", "300")
    yield s
    run_installer(REPO, root, "stop", DEPLOY)
    kill_leftovers(root)


def test_apikey_commands_drive_the_running_service(site):
    assert classify(site)[0] == 200  # inference open by default
    created = json.loads(installer(site, "apikey", "create", DEPLOY, "--name", "crm", "--json").stdout)
    key, kid = created["key"], created["id"]
    listed = installer(site, "apikey", "list", DEPLOY, "--json").stdout
    assert key not in listed and json.loads(listed)["keys"][0]["id"] == kid
    f = site["data"] / "access.json"
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o640 and key not in f.read_text()
    if os.geteuid() == 0:  # the service runs as the service user and must read it
        assert st.st_uid == pwd.getpwnam("visionpack").pw_uid
    installer(site, "apikey", "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    status, body = classify(site)
    assert (status, body["error_code"]) == (401, 110)
    assert classify(site, key)[0] == 200
    installer(site, "apikey", "revoke", DEPLOY, kid)
    assert classify(site, key)[1]["error_code"] == 110
    out = installer(site, "status", DEPLOY).stdout
    assert "access: infer key, gallery loopback, ops loopback; 0 active API key(s)" in out
    installer(site, "apikey", "policy", DEPLOY, "--scope", "infer", "--policy", "open")
    assert classify(site)[0] == 200


def test_upgrade_and_rollback_prove_releases_when_infer_and_ops_want_keys(site):
    key = json.loads(installer(site, "apikey", "create", DEPLOY, "--scope", "infer,ops", "--json").stdout)["key"]
    installer(site, "apikey", "policy", DEPLOY, "--scope", "infer", "--policy", "key")
    installer(site, "apikey", "policy", DEPLOY, "--scope", "ops", "--policy", "key")
    ids_before = {k["id"] for k in json.loads(installer(site, "apikey", "list", DEPLOY, "--json").stdout)["keys"]}
    v1 = (REPO / "package" / "VERSION").read_text().strip()
    pkg2 = site["bench"].update_package(site["work"] / "pkg2", v1 + "-keys", ["efficientnet_lite0_imagenet"])
    up = installer(site, "upgrade", DEPLOY, "--package", str(pkg2), "--timeout", "300")
    assert "cat.jpg -> " in up.stdout, up.stdout  # the sample inference passed the infer=key policy
    doc = json.loads(installer(site, "status", DEPLOY, "--json").stdout)["deploys"][0]
    assert (doc["release"], doc["ready"]) == (v1 + "-keys", True)  # readiness through /ready's summary
    assert doc["ready_detail"] == {"ready": True}
    assert classify(site)[1]["error_code"] == 110 and classify(site, key)[0] == 200
    rb = installer(site, "rollback", DEPLOY, "--timeout", "300")
    assert "cat.jpg -> " in rb.stdout, rb.stdout
    assert classify(site)[1]["error_code"] == 110 and classify(site, key)[0] == 200
    listed = json.loads(installer(site, "apikey", "list", DEPLOY, "--json").stdout)
    assert {k["id"] for k in listed["keys"]} == ids_before  # no probe key left behind
    assert listed["policies"] == {"infer": "key", "gallery": "loopback", "ops": "key"}
    lines = installer(site, "status", DEPLOY).stdout.splitlines()
    assert any(line.startswith(f"run: {DEPLOY}:") and line.endswith(" ready") for line in lines), lines
