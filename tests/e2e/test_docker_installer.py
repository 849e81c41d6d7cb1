"""``install.py --runtime docker`` end to end on a real engine: the real demo-classify deploy as a
container, driven only through install.py, start-1.sh and trouble_shooting.sh as an operator would.

One install root for the module, the tests in order: refusals that leave nothing behind (no engine,
no image), install and classify over loopback, status/list, stop/start, ``lu`` (a good license
while clients keep getting answers; another machine's is refused, and one copied in answers
337000), upgrade and rollback under load with zero failed requests (the socket is handed over
between containers), an installer killed mid-switch (undone or finished by the next command, no
failed request), a SIGKILLed main process restarted by Docker, start-1.sh recreating the
container, trouble_shooting.sh, remove (data kept) and --purge.

The engine comes from .ci/docker-engine.sh (dockerd --bridge=none --iptables=false); when it
cannot be started the fixture fails, it never skips (docs/docker.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_docker_fixtures import (  # noqa: E402,F401
    DEPLOY,
    REPO,
    classify_cat,
    docker_client,
    free_port,
    runtime_image,
    shared_runtime,
    source_tree,
    vendor,
    wait_for,
    wheelhouse,
)
from test_install_classify import demo_models  # noqa: E402,F401
from test_installer_fixtures import new_root, run_installer  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_upgrade import phase_stats, update_package  # noqa: E402

from visionpack.installer.procs import get_ready  # noqa: E402

NAME = f"visionpack-{DEPLOY}-1"
V1 = (REPO / "package" / "VERSION").read_text().strip()
V2 = V1 + "-docker2"


@pytest.fixture(scope="module")
def site(tmp_path_factory, shared_runtime, vendor, runtime_image, docker_client, demo_models):
    """An install root with the vendor's key and a license for this machine; nothing installed."""
    base = tmp_path_factory.mktemp("docker-e2e")
    root = new_root(base, shared_runtime)
    (root / "licenses").mkdir()
    shutil.copy2(vendor.pub, root / "licenses" / vendor.pub.name)
    vendor.issue(root / "licenses" / "license.lic")
    site = {"base": base, "root": root, "port": free_port(), "vendor": vendor, "client": docker_client}
    yield site
    for c in docker_client.containers.list(all=True, filters={"label": f"visionpack.root={root}"}):
        c.remove(force=True)


def installer(site, *args, timeout=900, src=REPO, env=None):
    return run_installer(src, site["root"], *args, timeout=timeout, env=env)


def status(site) -> dict:
    proc = installer(site, "status", DEPLOY, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["deploys"][0]


def container(site):
    (c,) = site["client"].containers.list(all=True, filters={"label": f"visionpack.root={site['root']}"})
    c.reload()
    return c


def assert_classifies(port: int) -> None:
    code, answer = classify_cat(port)
    assert code == 200 and answer["results"] and "cat" in answer["results"][0]["name"].lower(), answer


# --- refusals: nothing half installed ------------------------------------------------------------


def test_no_engine_is_refused_before_anything_is_written(site):
    proc = installer(
        site,
        "install",
        DEPLOY,
        "--runtime",
        "docker",
        "--port",
        str(site["port"]),
        env={"DOCKER_HOST": f"unix://{site['base']}/no-such-docker.sock"},
    )
    assert proc.returncode == 23, proc.stdout + proc.stderr
    assert "docker-unavailable" in proc.stderr or "no Docker engine answers" in proc.stderr, proc.stderr
    assert not (site["root"] / DEPLOY).exists()


def test_no_image_is_refused_before_anything_is_written(site):
    # A package whose lock names an image that neither the engine nor original/images/ has.
    pkg = update_package(site["base"] / "pkg-noimage", V1, ["efficientnet_lite0_imagenet"])
    with open(pkg / "original" / "requirements.lock", "a") as fh:
        fh.write("# another lock, another image key\n")
    proc = installer(site, "install", DEPLOY, "--runtime", "docker", "--port", str(site["port"]), src=pkg)
    assert proc.returncode == 12, proc.stdout + proc.stderr
    assert "download.sh --image" in proc.stderr, proc.stderr
    assert not (site["root"] / DEPLOY).exists()


# --- the life of a docker deploy -------------------------------------------------------------------


def test_install_runtime_docker_classifies_over_loopback(site):
    proc = installer(
        site,
        "install",
        DEPLOY,
        "--runtime",
        "docker",
        "--host",
        "127.0.0.1",
        "--port",
        str(site["port"]),
        "--timeout",
        "300",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_classifies(site["port"])
    c = container(site)
    assert c.name == NAME and c.attrs["HostConfig"]["NetworkMode"] == "host"
    assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert c.attrs["Config"]["User"] == "10001:10001" and c.attrs["Config"]["Healthcheck"]["Test"]
    assert (c.labels["visionpack.deploy"], c.labels["visionpack.version"], c.labels["visionpack.instance"]) == (
        DEPLOY,
        V1,
        "1",
    )
    modes = {m["Destination"]: m["RW"] for m in c.attrs["Mounts"]}
    paths_root = site["root"].resolve()
    assert modes[str(paths_root / "licenses")] is False and modes[str(paths_root / DEPLOY / "data")] is True
    assert modes[str((paths_root / DEPLOY / "releases" / V1).resolve())] is False
    assert modes["/etc/machine-id"] is False


def test_status_and_list_show_the_container(site):
    wait_for(
        lambda: container(site).attrs["State"].get("Health", {}).get("Status") == "healthy",
        60,
        what="docker health 'healthy'",
    )
    st = status(site)
    assert (st["runtime"], st["state"], st["release"], st["ready"]) == ("docker", "running", V1, True), st
    (c,) = st["containers"]
    assert (c["name"], c["health"], c["version"], c["restart_count"]) == (NAME, "healthy", V1, 0), c
    assert st["pid"] == container(site).attrs["State"]["Pid"] and st["worker_pids"], st
    assert st["license"]["ok"] is True
    text = installer(site, "status", DEPLOY).stdout
    assert f"container: {NAME}" in text and "(healthy)" in text
    listed = json.loads(installer(site, "list", "--json").stdout)["deploys"][0]
    assert (listed["runtime"], listed["state"], listed["release"]) == ("docker", "running", V1)


def test_stop_keeps_the_container_and_start_brings_it_back(site):
    proc = installer(site, "stop", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert container(site).status == "exited"
    assert get_ready("127.0.0.1", site["port"]) == (None, None)
    assert status(site)["state"] == "stopped"
    proc = installer(site, "start", DEPLOY, "--timeout", "300")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert container(site).status == "running" and status(site)["state"] == "running"
    assert_classifies(site["port"])


def test_lu_good_license_keeps_serving_and_another_machines_is_refused(site, tmp_path):
    root, port = site["root"], site["port"]
    renewal = site["vendor"].issue(tmp_path / "renewal.lic")
    proc = installer(site, "lu", str(renewal))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_classifies(port)
    lic = root / "licenses" / "license.lic"
    assert lic.read_bytes() == renewal.read_bytes()
    other = site["vendor"].issue(tmp_path / "other.lic", other_machine=True)
    proc = installer(site, "lu", str(other))
    assert proc.returncode == 20 and "machine" in proc.stderr, proc.stdout + proc.stderr
    assert lic.read_bytes() == renewal.read_bytes()
    assert_classifies(port)
    # The same file copied in by hand (a license taken from another machine): the container
    # sees it at its next request and answers EasyDL's 337000.
    try:
        tmp = lic.with_name(".swap")
        shutil.copy2(other, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, lic)
        code, answer = classify_cat(port)
        assert (code, answer.get("error_code"), answer.get("error_msg")) == (403, 337000, "Auth check failed"), answer
    finally:
        shutil.copy2(renewal, lic.with_name(".swap"))
        os.chmod(lic.with_name(".swap"), 0o644)
        os.replace(lic.with_name(".swap"), lic)
    assert_classifies(port)


class Load:
    """bench_upgrade.py's load process: 4 client threads, a new connection per request."""

    def __init__(self, site, work: Path) -> None:
        self.out, self.stop = work / "requests.jsonl", work / "stop"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "benchmarks" / "bench_upgrade.py"),
                "--client",
                str(site["port"]),
                DEPLOY,
                str(REPO / "package" / "samples" / "cat.jpg"),
                str(self.out),
                "4",
                str(self.stop),
                "600",
            ]
        )

    def finish(self) -> list:
        self.stop.write_text("stop\n")
        self.proc.wait(timeout=120)
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]


def test_upgrade_and_rollback_under_load_fail_nothing(site, tmp_path):
    pkg2 = update_package(site["base"] / "pkg2", V2, ["efficientnet_lite0_imagenet"])
    load = Load(site, tmp_path)
    try:
        marks = {"start": time.time()}
        time.sleep(3)
        marks["up"] = time.time()
        up = installer(site, "upgrade", DEPLOY, "--package", str(pkg2), "--timeout", "300", "--json")
        marks["up_end"] = time.time()
        assert up.returncode == 0, up.stdout + up.stderr
        time.sleep(3)
        marks["rb"] = time.time()
        rb = installer(site, "rollback", DEPLOY, "--timeout", "300", "--json")
        marks["rb_end"] = time.time()
        assert rb.returncode == 0, rb.stdout + rb.stderr
        time.sleep(3)
    finally:
        rows = load.finish()
    up_doc, rb_doc = json.loads(up.stdout), json.loads(rb.stdout)
    phases = {
        "upgrade": phase_stats(rows, marks["up"], marks["up_end"]),
        "rollback": phase_stats(rows, marks["rb"], marks["rb_end"]),
    }
    print(
        "docker switch under load:",
        json.dumps(
            {
                "phases": phases,
                "requests": len(rows),
                "upgrade_wall_s": round(marks["up_end"] - marks["up"], 1),
                "rollback_wall_s": round(marks["rb_end"] - marks["rb"], 1),
            }
        ),
    )
    failures = [r for r in rows if not r[2]]
    assert not failures, failures[:5]
    assert phases["upgrade"]["requests"] > 5 and phases["rollback"]["requests"] > 5, phases
    # The socket was handed over (not stop-then-start), and each release was proven first.
    assert up_doc["handed_over"] is True and rb_doc["handed_over"] is True, (up_doc, rb_doc)
    assert "cat" in up_doc["proof"] and "cat" in rb_doc["proof"]
    c = container(site)  # exactly one container again, under its own name
    assert (c.name, c.labels["visionpack.version"]) == (NAME, V1)
    st = status(site)
    assert (st["release"], st["running_release"], st["state"]) == (V1, V1, "running")
    listed = json.loads(installer(site, "list", "--json").stdout)["deploys"][0]
    assert {r["version"] for r in listed["releases"]} == {V1, V2}


# Killed before the commit: undone (the standby container goes, the old one never stopped).
# After it: finished (the old container is retired, the new one takes the canonical name).
@pytest.mark.parametrize("step,expected", [("prove", V1), ("public-open", V1), ("retire", V2)])
def test_a_killed_container_switch_is_undone_or_finished(site, tmp_path, step, expected):
    load = Load(site, tmp_path)
    try:
        killed = installer(
            site,
            "rollback",
            DEPLOY,
            "--to",
            V2,
            "--timeout",
            "300",
            env={"VISIONPACK_TEST_KILL_AT": f"rollback:{step}"},
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        assert status(site)["interrupted_operation"]["op"] == "rollback"
        nxt = installer(site, "start", DEPLOY)
        time.sleep(1)
    finally:
        rows = load.finish()
    assert nxt.returncode == 0, nxt.stdout + nxt.stderr
    assert "recovery: an interrupted 'rollback'" in nxt.stdout, nxt.stdout
    assert [r for r in rows if not r[2]] == [] and len(rows) > 5
    c = container(site)  # one container, under its own name, of the release state.json names
    assert (c.name, c.labels["visionpack.version"]) == (NAME, expected)
    st = status(site)
    assert (st["release"], st["running_release"], st["state"], st["interrupted_operation"]) == (
        expected,
        expected,
        "running",
        None,
    )
    assert os.readlink(site["root"] / DEPLOY / "current") == f"releases/{expected}"
    assert_classifies(site["port"])
    if expected != V1:  # back to V1 for the tests below
        back = installer(site, "rollback", DEPLOY, "--to", V1, "--timeout", "300")
        assert back.returncode == 0, back.stdout + back.stderr
        assert container(site).labels["visionpack.version"] == V1


def test_a_killed_main_process_is_restarted_by_docker(site):
    c = container(site)
    pid, restarts = c.attrs["State"]["Pid"], c.attrs["RestartCount"]
    os.kill(pid, signal.SIGKILL)  # the host's view of gunicorn's master, as the OOM killer would

    def restarted():
        c.reload()
        return (
            c.attrs["State"]["Running"]
            and c.attrs["State"]["Pid"] not in (0, pid)
            and c.attrs["RestartCount"] == restarts + 1
        )

    wait_for(restarted, 60, what="docker to restart the container")
    wait_for(lambda: get_ready("127.0.0.1", site["port"])[0] == 200, 180, what="/ready after the restart")
    assert_classifies(site["port"])
    assert status(site)["containers"][0]["restart_count"] == restarts + 1


def test_start_script_recreates_the_container(site):
    old_id = container(site).id
    script = site["root"] / DEPLOY / "current" / "start" / "start-1.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    c = container(site)
    assert c.id != old_id and c.name == NAME and c.labels["visionpack.version"] == V1
    assert_classifies(site["port"])
    assert status(site)["state"] == "running"


def test_trouble_shooting_passes_on_the_docker_deploy(site):
    proc = subprocess.run(
        ["bash", str(REPO / "trouble_shooting" / "trouble_shooting.sh"), "--root", str(site["root"]), DEPLOY, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")},
    )
    doc = json.loads(proc.stdout)
    bad = [
        f"{c['status']} {c['name']}: {c['detail']}" for g in doc["groups"] for c in g["checks"] if c["status"] == "FAIL"
    ]
    assert proc.returncode == 0 and not bad, bad
    names = {c["name"] for g in doc["groups"] for c in g["checks"]}
    assert any("container" in n for n in names), names


def test_remove_keeps_data_and_purge_deletes_it(site):
    root = site["root"]
    marker = root / DEPLOY / "data" / "keep-me"
    marker.write_text("x")
    proc = installer(site, "remove", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not site["client"].containers.list(all=True, filters={"label": f"visionpack.root={root}"})
    assert get_ready("127.0.0.1", site["port"]) == (None, None)
    assert marker.read_text() == "x" and not (root / DEPLOY / "releases").exists()
    # Installed again on the kept data, then purged with it.
    proc = installer(
        site,
        "install",
        DEPLOY,
        "--runtime",
        "docker",
        "--host",
        "127.0.0.1",
        "--port",
        str(site["port"]),
        "--timeout",
        "300",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_classifies(site["port"])
    proc = installer(site, "remove", DEPLOY, "--purge")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (root / DEPLOY).exists()
    assert not site["client"].containers.list(all=True, filters={"label": f"visionpack.root={root}"})
