"""Shared fixtures of the Docker runtime tests (no tests here; imported by test_docker_*.py).

- ``docker_client``: a real engine, started by ``.ci/docker-engine.sh`` (docker.io from Debian,
  ``dockerd --bridge=none --iptables=false``) when none answers.
- ``runtime_image``: ``tools/image/build_image.sh`` (debootstrap + the wheelhouse; a no-op when
  original/images/ already holds the image for this lock).
- ``vendor``: a throwaway vendor key pair and this machine's license request; ``vendor.issue()``
  makes licenses (for this machine, or for "another machine" by changing a hash in the request,
  as a vendor would issue one for other hardware).
- ``docker_root``: an install root with the real ``demo-classify`` deploy installed ``--stopped``
  by ``install.py`` from this repository (its runtime venv is the session's shared one), ready
  for the docker runtime to start. Containers of the root are removed at teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_installer_fixtures import (  # noqa: E402,F401
    REPO,
    new_root,
    run_installer,
    shared_runtime,
    source_tree,
    wheelhouse,
)

DEPLOY = "demo-classify"
BUNDLE = REPO / "models" / "efficientnet_lite0_imagenet"
VENDOR_TOOL = REPO / "vendor" / "visionpack_vendor.py"


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768-60999).

    A port picked by binding port 0 comes from the ephemeral range, where any client
    connection on the machine may take it as its local port before our server binds it.
    """
    import random
    import socket

    for _ in range(500):
        port = random.SystemRandom().randint(20000, 32000)  # not the test-seeded global generator
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in 20000-32000")


def sh(cmd: list, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="session")
def docker_client():
    sh(["bash", REPO / ".ci" / "docker-engine.sh"], timeout=900)
    import docker

    client = docker.from_env(timeout=600)
    assert client.ping()
    return client


@pytest.fixture(scope="session")
def runtime_image(docker_client, wheelhouse):
    from visionpack.installer.runtimes import docker_containers

    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "image" / "build_image.sh")], capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ref = docker_containers.image_ref(REPO)
    assert ref.tar.is_file() and ref.image_id and ref.sha256
    return ref


@dataclass
class Vendor:
    base: Path
    key: Path
    pub: Path
    request: dict

    def issue(self, out: Path, *, instances: int = 64, other_machine: bool = False) -> Path:
        request = json.loads(json.dumps(self.request))
        if other_machine:
            # The same request with another machine id, as the vendor would get from other hardware.
            from visionpack.licensing.fingerprint import component_hash

            request["components"]["machine_id"] = component_hash("machine_id", "0123456789abcdef0123456789abcdef")
        req = out.with_suffix(".request.json")
        req.write_text(json.dumps(request))
        sh(
            [
                sys.executable,
                VENDOR_TOOL,
                "issue",
                "--key",
                self.key,
                "--request",
                req,
                "--out",
                out,
                "--days",
                "30",
                "--customer",
                "docker-tests",
                "--instances",
                str(instances),
            ]
        )
        return out


@pytest.fixture(scope="session")
def vendor(tmp_path_factory) -> Vendor:
    base = tmp_path_factory.mktemp("docker-vendor")
    sh([sys.executable, VENDOR_TOOL, "keygen", "--out", base / "keys"])
    from visionpack.licensing.admin import write_request

    request = write_request(base / "request.json")
    return Vendor(base, next((base / "keys").glob("*.key")), next((base / "keys").glob("*.pub")), request)


@pytest.fixture(scope="module")
def docker_root(tmp_path_factory, shared_runtime, vendor, runtime_image, docker_client):
    if not (BUNDLE / "manifest.json").is_file():
        subprocess.run(["bash", str(REPO / "download.sh")], cwd=REPO, check=True, timeout=3600)
    base = tmp_path_factory.mktemp("docker-root")
    root = new_root(base, shared_runtime)
    (root / "licenses").mkdir()
    shutil.copy2(vendor.pub, root / "licenses" / vendor.pub.name)
    vendor.issue(root / "licenses" / "license.lic")
    port = free_port()
    proc = run_installer(REPO, root, "install", DEPLOY, "--stopped", "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield root, port
    from visionpack.installer.layout import Root
    from visionpack.installer.runtimes import docker_containers

    docker_containers.remove(Root(root).deploy(DEPLOY), client=docker_client, say=lambda _m: None)


def wait_for(predicate, timeout: float, step: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def post_json(port: int, path: str, doc: dict, timeout: float = 60) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def classify_cat(port: int) -> tuple[int, dict]:
    import base64

    image = base64.b64encode((REPO / "package" / "samples" / "cat.jpg").read_bytes()).decode()
    return post_json(port, f"/{DEPLOY}/ImageClassification", {"image": image, "top_num": 5})


def environ_without_visionpack() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("VISIONPACK_")}


def slots_locked_by(pids: set[int]) -> list[str]:
    """Slot files of the host's instance directory flock()ed by one of ``pids`` (host pids).

    Read from /proc/locks rather than the slot's owner label: a container (uid 10001) that takes
    a slot file root once created can lock it but not relabel it (docs/docker.md, open points).
    """
    from visionpack.licensing.instances import INSTANCES_DIR

    by_inode = {p.stat().st_ino: p.name for p in INSTANCES_DIR.glob("slot-*.lock")}
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[4].isdigit() and int(f[4]) in pids:
            inode = int(f[5].rsplit(":", 1)[1])
            if inode in by_inode:
                held.append(by_inode[inode])
    return sorted(held)
