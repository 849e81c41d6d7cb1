"""Container checks against the real Docker engine: a container labelled as a docker deploy's
(the installer's labels), made from the package's own runtime image, running and healthy, then
stopped. No network: the container runs with --network none and only sleeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from test_docker_fixtures import docker_client, runtime_image  # noqa: F401 (fixtures)
from test_installer_fixtures import wheelhouse  # noqa: F401 (runtime_image needs it)
from test_troubleshooting_helpers import REPO, find, free_port, run_diag

sys.path.insert(0, str(REPO / "trouble_shooting"))
from vp_diag import docker as diag_docker  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402

DEPLOY = "demo-docker"


def _docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image(runtime_image) -> str:
    """The package's runtime image: the Docker tests' fixture starts the engine and builds (or
    reuses) it with tools/image/build_image.sh; loaded from its tar if the engine lacks it."""
    if _docker("image", "inspect", runtime_image.image_id, check=False).returncode != 0:
        _docker("load", "-i", str(runtime_image.tar), timeout=900)  # a fresh engine: the package's tar
    return runtime_image.image_id


@pytest.fixture
def docker_root(tmp_path):
    root = tmp_path / "root"
    d = root / DEPLOY
    (d / "releases" / "1.0.0").mkdir(parents=True)
    os.symlink("releases/1.0.0", d / "current")
    state = {
        "schema": 1,
        "deploy": DEPLOY,
        "service": "classification",
        "release": "1.0.0",
        "runtime": "docker",
        "releases": {"1.0.0": {}},
        "desired": "running",
        "host": "127.0.0.1",
        "port": free_port(),
        "workers": 1,
        "operation": None,
    }
    (d / "state.json").write_text(json.dumps(state))
    (root / "licenses").mkdir()
    return root


@pytest.fixture
def container(image, docker_root):
    name = f"vpdiag-test-{os.getpid()}"
    _docker("rm", "-f", name, check=False)
    _docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--label",
        f"visionpack.deploy={DEPLOY}",
        "--label",
        f"visionpack.root={docker_root}",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--entrypoint",
        "sleep",
        image,
        "300",
    )
    try:
        deadline = time.monotonic() + 60
        while _docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() != "healthy":
            assert time.monotonic() < deadline, "container never became healthy"
            time.sleep(0.5)
        yield name
    finally:
        _docker("rm", "-f", name, check=False)


def test_running_then_stopped_container(docker_root, container):
    rc, doc, _ = run_diag("--root", str(docker_root))
    c = find(doc, f"container {container}")
    assert c["status"] == "PASS" and c["detail"].startswith("running (pid ") and "health healthy" in c["detail"]
    assert not [x for g in doc["groups"] for x in g["checks"] if x["name"] == "pidfile"]
    state_file = docker_root / DEPLOY / "state.json"
    state = json.loads(state_file.read_text())
    image_id = _docker("inspect", "--format", "{{.Image}}", container).stdout.strip()
    state["releases"]["1.0.0"]["image"] = {"tag": "visionpack-runtime:other", "id": "sha256:" + "0" * 64}
    state_file.write_text(json.dumps(state))
    rc, doc, _ = run_diag("--root", str(docker_root))
    c = find(doc, f"container {container}")
    assert c["status"] == "WARN" and f"on image {image_id[:19]}, not the release's sha256:000000000000" in c["detail"]
    state["releases"]["1.0.0"]["image"]["id"] = image_id
    state_file.write_text(json.dumps(state))
    rc, doc, _ = run_diag("--root", str(docker_root))
    assert find(doc, f"container {container}")["status"] == "PASS"
    _docker("stop", "-t", "0", container)
    rc, doc, _ = run_diag("--root", str(docker_root))
    c = find(doc, f"container {container}")
    assert rc == 1 and c["status"] == "FAIL" and c["detail"].startswith("exited, exit code ")
    assert c["fix"][0] == f"docker logs --tail 50 {container}"
    assert f"--root {docker_root} start {DEPLOY}" in c["fix"][1]


def test_no_container_of_a_deploy_that_should_run(docker_root):
    rc, doc, _ = run_diag("--root", str(docker_root))
    c = find(doc, "containers")
    assert rc == 1 and c["status"] == "FAIL" and c["detail"] == "no container of this deploy exists (want up)"


def test_engine_not_answering(docker_root, tmp_path):
    ctx = Context(roots=[docker_root], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    d = Deploy(root=docker_root, name=DEPLOY, state={"runtime": "docker", "desired": "running"})
    (r,) = diag_docker.deploy_checks(ctx, d, sock=str(tmp_path / "no.sock"))
    assert r.status == "FAIL" and r.name == "docker-engine" and "systemctl start docker" in r.fix
