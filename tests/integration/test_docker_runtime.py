"""The docker runtime against a real engine: the real demo-classify release in a container.

The deploy is installed ``--stopped`` by install.py into a temporary root (the process
runtime's release layout); docker_containers then loads the package's image and runs the release
in a container with host networking. Requests go to 127.0.0.1 only. The tests run in file
order and share the container where that is the point (kill/restart, license swap).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from docker.errors import NotFound

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_docker_fixtures import (  # noqa: E402,F401
    DEPLOY,
    REPO,
    classify_cat,
    docker_client,
    docker_root,
    free_port,
    runtime_image,
    shared_runtime,
    slots_locked_by,
    source_tree,
    vendor,
    wait_for,
    wheelhouse,
)

from visionpack.errors import StartFailed  # noqa: E402
from visionpack.installer.layout import Root  # noqa: E402
from visionpack.installer.procs import get_ready  # noqa: E402
from visionpack.installer.runtimes import (
    docker_containers as dr,  # noqa: E402
    docker_start,  # noqa: E402
)
from visionpack.licensing import instances  # noqa: E402

quiet = dict(say=lambda _m: None)


@pytest.fixture(scope="module")
def deploy(docker_root):
    root, port = docker_root
    paths = Root(root).deploy(DEPLOY)
    state = json.loads(paths.state.read_text())
    return paths, paths.release(state["release"]), state["release"], port


@pytest.fixture(scope="module")
def running(deploy, docker_client):
    paths, release, version, port = deploy
    info = dr.start(
        paths, REPO, release, version, host="127.0.0.1", port=port, timeout=300, client=docker_client, **quiet
    )
    return info


def test_load_image_skips_an_image_the_engine_has_and_loads_a_missing_one(runtime_image, docker_client):
    # No container of ours may use the image while it is removed; tests of this module start later.
    for c in docker_client.containers.list(all=True, filters={"ancestor": runtime_image.image_id}):
        pytest.fail(f"container {c.name} uses the image; remove it before the test")
    docker_client.images.remove(runtime_image.image_id, force=True)
    image_id, loaded = dr.load_image(docker_client, runtime_image, **quiet)
    assert (image_id, loaded) == (runtime_image.image_id, True)
    assert docker_client.images.get(runtime_image.tag).id == runtime_image.image_id
    image_id, loaded = dr.load_image(docker_client, runtime_image, **quiet)
    assert (image_id, loaded) == (runtime_image.image_id, False)


def test_the_container_is_configured_as_documented(running, deploy, docker_client):
    paths, release, version, port = deploy
    c = docker_client.containers.get(dr.container_name(DEPLOY))
    cfg, host = c.attrs["Config"], c.attrs["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert cfg["User"] == "10001:10001"
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert cfg["Labels"]["visionpack.deploy"] == DEPLOY
    assert cfg["Labels"]["visionpack.version"] == version
    assert cfg["Labels"]["visionpack.instance"] == "1"
    assert cfg["Labels"]["visionpack.root"] == str(paths.root.path)
    assert cfg["Healthcheck"]["Test"] == [
        "CMD-SHELL",
        f"/usr/local/bin/visionpack-healthcheck http://127.0.0.1:{port}/ready",
    ]
    mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
    ro = {
        str(release.resolve()),
        str(paths.root.licenses),
        "/etc/machine-id",
        "/sys/class/net",
        "/sys/block",
        "/sys/dev/block",
    }
    rw = {str(paths.data), str(paths.logs), str(paths.run), "/var/lib/visionpack"}
    for target in ro | rw:
        assert target in mounts, target
        assert mounts[target]["Source"] == target
        assert mounts[target]["RW"] is (target in rw), target
    # Only this release is visible: not the root, not the runtime venv, not other releases.
    assert not any(d in (str(paths.root.path), str(paths.dir), str(paths.releases)) for d in mounts)
    # The main process runs as the image's non-root user, and is gunicorn of this release.
    top = c.top(ps_args="-o pid,uid,args")
    uid, args = top["Titles"].index("UID"), top["Titles"].index("COMMAND")
    assert any(
        row[uid] == "10001" and "gunicorn" in row[args] and str(release.resolve()) in row[args]
        for row in top["Processes"]
    ), top
    assert {row[uid] for row in top["Processes"]} == {"10001"}, top
    assert running["running"] and running["pid"]


def test_classifies_the_cat_over_loopback(running, deploy):
    status, answer = classify_cat(deploy[3])
    assert status == 200, answer
    assert "error_code" not in answer, answer
    names = [r["name"] for r in answer["results"]]
    assert {"tabby, tabby cat", "tiger cat", "Egyptian cat"} & set(names[:3]), answer


def test_docker_reports_healthy_from_the_ready_probe(running, deploy, docker_client):
    port = deploy[3]
    c = docker_client.containers.get(dr.container_name(DEPLOY))

    def healthy():
        c.reload()
        return c.attrs["State"]["Health"]["Status"] == "healthy"

    wait_for(healthy, 60, what="docker health 'healthy'")
    log = c.attrs["State"]["Health"]["Log"][-1]
    assert log["ExitCode"] == 0 and log["Output"].startswith(f"http://127.0.0.1:{port}/ready: 200 "), log
    # The licence inside the container was matched against the host's identity. Docker keeps only
    # the start of a probe's output, so read the full verdict from /ready itself (host network).
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/ready", timeout=30) as resp:
        lic = json.loads(resp.read())["license"]
    assert {"cpu", "mac", "machine_id"} <= set(lic["matched"]), lic


def main_pid(client, name: str = dr.container_name(DEPLOY)) -> int:
    c = client.containers.get(name)
    c.reload()
    return c.attrs["State"]["Pid"]


def test_the_container_holds_a_licensed_instance_slot_of_the_host(running, deploy, docker_client):
    # gunicorn's master inside the container flock()s one slot file of the host's directory.
    (slot,) = slots_locked_by({main_pid(docker_client)})
    assert slot in {f"slot-{h['slot']}.lock" for h in instances.holders()}


def test_status_of_a_running_container(running, deploy, docker_client):
    paths, release, version, port = deploy
    st = dr.status(paths, host="127.0.0.1", port=port, client=docker_client)
    assert (st["runtime"], st["state"], st["ready"]) == ("docker", "running", True)
    (c,) = st["containers"]
    assert (c["name"], c["version"], c["instance"], c["release"]) == (
        dr.container_name(DEPLOY),
        version,
        "1",
        str(release.resolve()),
    )
    assert st["ready_detail"]["deploy"] == DEPLOY


def test_docker_restarts_a_container_whose_main_process_was_killed(running, deploy, docker_client):
    port = deploy[3]
    c = docker_client.containers.get(dr.container_name(DEPLOY))
    c.reload()
    before_pid, before_restarts = c.attrs["State"]["Pid"], c.attrs["RestartCount"]
    # SIGKILL to the container's main process (gunicorn's master) from the host, as a crash or the
    # OOM killer would. ('docker kill' itself counts as a manual stop for Docker 20.10's
    # unless-stopped and is not restarted; see docs/docker.md.)
    os.kill(before_pid, signal.SIGKILL)

    def restarted():
        c.reload()
        st = c.attrs["State"]
        return st["Running"] and st["Pid"] not in (0, before_pid) and c.attrs["RestartCount"] == before_restarts + 1

    wait_for(restarted, 60, what="docker to restart the killed container")
    wait_for(lambda: get_ready("127.0.0.1", port)[0] == 200, 180, what="/ready after the restart")
    status, answer = classify_cat(port)
    assert status == 200 and answer["results"], answer
    # The killed master's slot was freed by the kernel; the new master holds exactly one.
    assert len(slots_locked_by({before_pid})) == 0
    assert len(slots_locked_by({main_pid(docker_client)})) == 1


def test_a_license_for_another_machine_answers_337000(running, deploy, vendor, tmp_path):
    paths, release, version, port = deploy
    lic = paths.root.licenses / "license.lic"
    good = lic.read_bytes()
    other = vendor.issue(tmp_path / "other.lic", other_machine=True)
    try:
        # lu swaps by rename; the running workers see the new file at their next request.
        tmp = lic.with_name(".swap")
        shutil.copy2(other, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, lic)
        status, answer = classify_cat(port)
        assert (status, answer.get("error_code"), answer.get("error_msg")) == (403, 337000, "Auth check failed"), answer
        code, body = get_ready("127.0.0.1", port)
        assert code == 503 and body["license"]["reason"] == "wrong-machine", body
    finally:
        tmp = lic.with_name(".swap")
        tmp.write_bytes(good)
        os.chmod(tmp, 0o644)
        os.replace(tmp, lic)
    status, answer = classify_cat(port)
    assert status == 200 and answer["results"], answer


def refusal_reason(run_it, paths) -> str:
    """Run a container that must be refused; the reason from the lines it added to error.log."""
    offset = paths.error_log.stat().st_size
    with pytest.raises(StartFailed) as err:
        run_it()
    added = paths.error_log.read_text(errors="replace")[offset:]
    reasons = re.findall(r"license refused \(([a-z-]+)\)", added)
    assert reasons, err.value.detail + added
    return reasons[0]


def other_machine_spec(spec, tmp_path: Path, *, own_state: bool):
    """``spec`` with another machine id mounted, and (own_state) another machine's /var/lib/visionpack."""
    fake = tmp_path / "machine-id"
    fake.write_text("0123456789abcdef0123456789abcdef\n")
    os.chmod(fake, 0o644)
    state = tmp_path / "var-lib-visionpack"
    for sub in ("instances", "state"):
        (state / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(state / sub, 0o1777)
    mounts = []
    for m in spec.mounts:
        if m.target in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
            m = replace(m, source=str(fake))
        elif m.target == dr.SHARED_STATE and own_state:
            m = replace(m, source=str(state))
        mounts.append(m)
    assert tuple(mounts) != spec.mounts
    return replace(spec, mounts=tuple(mounts))


def test_a_copy_on_another_machine_is_refused(running, deploy, docker_client, runtime_image, tmp_path):
    """The container's fingerprint is what is mounted: another machine id is another machine."""
    paths, release, version, port = deploy
    other_port = free_port()
    spec = dr.spec_for(paths, release, version, runtime_image.tag, host="127.0.0.1", port=other_port, instance=2)
    fake = other_machine_spec(spec, tmp_path, own_state=True)
    reason = refusal_reason(
        lambda: dr.run(docker_client, fake, paths, host="127.0.0.1", port=other_port, timeout=120, **quiet), paths
    )
    assert reason == "wrong-machine"
    assert get_ready("127.0.0.1", other_port) == (None, None)
    # The refused container was removed; the real one still serves.
    assert [c.name for c in dr.containers(docker_client, paths)] == [dr.container_name(DEPLOY)]
    assert get_ready("127.0.0.1", port)[0] == 200


def test_a_fake_machine_id_on_this_machine_is_refused(running, deploy, docker_client, runtime_image, tmp_path):
    """With this host's state mounted, the clock mark (keyed by the machine id) no longer verifies."""
    paths, release, version, port = deploy
    other_port = free_port()
    spec = dr.spec_for(paths, release, version, runtime_image.tag, host="127.0.0.1", port=other_port, instance=2)
    fake = other_machine_spec(spec, tmp_path, own_state=False)
    reason = refusal_reason(
        lambda: dr.run(docker_client, fake, paths, host="127.0.0.1", port=other_port, timeout=120, **quiet), paths
    )
    assert reason == "clock-rollback"
    assert get_ready("127.0.0.1", port)[0] == 200


def test_containers_count_toward_the_instance_limit(running, deploy, docker_client, runtime_image, vendor, tmp_path):
    paths, release, version, port = deploy
    lic = paths.root.licenses / "license.lic"
    good = lic.read_bytes()
    other_port = free_port()
    spec = dr.spec_for(paths, release, version, runtime_image.tag, host="127.0.0.1", port=other_port, instance=2)

    def start_second(extra: int):
        # Other services on this machine may start or stop meanwhile: retry on a moved count.
        for attempt in range(4):
            shutil.copy2(
                vendor.issue(tmp_path / f"lic-{extra}-{attempt}.lic", instances=instances.count() + extra), lic
            )
            try:
                return "started", dr.run(
                    docker_client, spec, paths, host="127.0.0.1", port=other_port, timeout=300, **quiet
                )
            except StartFailed as exc:
                outcome = ("refused", exc.detail)
            if (extra == 0) == (outcome[0] == "refused"):
                return outcome
        return outcome

    try:
        # Every slot taken (ours included): the second container is refused.
        outcome, detail = start_second(0)
        assert outcome == "refused" and "instance-limit" in detail, detail
        # One slot to spare: it starts beside the first, on its own port, and takes it.
        outcome, second = start_second(1)
        listeners = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
        assert outcome == "started", (second, other_port, port, listeners)
        assert len(slots_locked_by({main_pid(docker_client), second["pid"]})) == 2
        assert classify_cat(other_port)[0] == 200
    finally:
        lic.write_bytes(good)
        for c in docker_client.containers.list(all=True, filters={"name": spec.name}):
            c.remove(force=True)


def test_start_script_recreates_the_container_like_easydl_rollback(running, deploy, docker_client, runtime_image):
    paths, release, version, port = deploy
    spec = dr.spec_for(paths, release, version, runtime_image.tag, host="127.0.0.1", port=port)
    script = docker_start.write_start_script(
        REPO / "start", paths, spec, runtime_image, instance=1, version=version, host="127.0.0.1", port=port
    )
    assert script == release.resolve() / "start" / "start-1.sh"
    old = docker_client.containers.get(spec.name)
    printed = subprocess.run(["bash", str(script), "--print"], capture_output=True, text=True, check=True).stdout
    assert printed.startswith("docker run --detach --name " + spec.name)
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = docker_client.containers.get(spec.name)
    assert new.id != old.id
    with pytest.raises(NotFound):
        old.reload()  # removed (docker rm -f), not just stopped
    keys = ("User", "Labels", "Healthcheck", "Cmd", "WorkingDir")
    assert {k: new.attrs["Config"][k] for k in keys} == {k: old.attrs["Config"][k] for k in keys}
    hk = ("NetworkMode", "RestartPolicy", "CapDrop", "SecurityOpt", "LogConfig")
    assert {k: new.attrs["HostConfig"][k] for k in hk} == {k: old.attrs["HostConfig"][k] for k in hk}
    assert sorted((m["Source"], m["Destination"], m["RW"]) for m in new.attrs["Mounts"]) == sorted(
        (m["Source"], m["Destination"], m["RW"]) for m in old.attrs["Mounts"]
    )
    assert new.attrs["Image"] == old.attrs["Image"]
    assert classify_cat(port)[0] == 200


def test_stop_start_remove(running, deploy, docker_client):
    paths, release, version, port = deploy
    pid = main_pid(docker_client)
    assert dr.stop(paths, graceful=10, client=docker_client, **quiet) is True
    st = dr.status(paths, host="127.0.0.1", port=port, client=docker_client)
    assert st["state"] == "stopped" and st["containers"][0]["status"] == "exited"
    assert get_ready("127.0.0.1", port) == (None, None)
    assert slots_locked_by({pid}) == []  # the stopped container's slot is free again
    assert dr.stop(paths, graceful=10, client=docker_client, **quiet) is False  # nothing runs
    dr.start(paths, REPO, release, version, host="127.0.0.1", port=port, timeout=300, client=docker_client, **quiet)
    assert dr.status(paths, host="127.0.0.1", port=port, client=docker_client)["state"] == "running"
    assert dr.remove(paths, client=docker_client, **quiet) == [dr.container_name(DEPLOY)]
    assert dr.status(paths, client=docker_client)["state"] == "absent"
    assert get_ready("127.0.0.1", port) == (None, None)
    # data/ and logs/ belong to the deploy, not the container: they survive it.
    assert paths.logs.is_dir() and (paths.logs / "error.log").is_file()
