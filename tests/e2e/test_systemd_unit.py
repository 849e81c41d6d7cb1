"""install --systemd under a real systemd: Debian 13 booted in a Docker container (host network only).

The image is the cached minimal Debian 13 root (tests/e2e/debian_roots.py) + Debian's ``systemd``
package, built once and cached beside the root as a ``docker save`` tar. The container runs
/sbin/init with CAP_SYS_ADMIN (``--privileged`` cannot start here: this machine's bounding set
lacks CAP_SYS_RESOURCE), ``--network host`` (never a bridge), this repository read-only at /pkg.
Inside it, as an operator would: license, ``install demo-classify --systemd``, ``systemctl
is-active``, a classification over loopback; kill -9 of the master, which Restart=on-failure
brings back; ``upgrade`` under a request loop with zero failed requests; ``rollback``;
``remove``, which disables and deletes the units.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import debian_roots
from tests.e2e.test_debian_matrix import CLIENT, update_package
from tests.paths import REPO

PORT = 18794
UNIT = "visionpack-demo-classify.service"
VENDOR = REPO / "vendor" / "visionpack_vendor.py"
PACKAGES = "systemd systemd-sysv procps"
LOOP = r"""
import base64, json, os, sys, urllib.request
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = json.dumps({"image": base64.b64encode(open("/pkg/package/samples/cat.jpg", "rb").read()).decode(),
                   "top_num": 1}).encode()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ok, failed = 0, []
while not os.path.exists(stop):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/demo-classify/ImageClassification", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=120) as resp:
            json.loads(resp.read())
        ok += 1
        if ok == 1:
            open(stop + ".first", "w").close()
    except Exception as exc:
        failed.append(repr(exc))
json.dump({"ok": ok, "failed": failed}, open(out, "w"))
"""
UPGRADE_UNDER_LOAD = r"""
set -euo pipefail
rm -f /work/stop /work/stop.first
python3 /work/loop.py "$PORT" /work/stop /work/loop.json & L=$!
until [ -e /work/stop.first ]; do kill -0 "$L"; sleep 0.1; done
python3 /pkg/package/Install/install.py --root /opt/vp upgrade demo-classify --package /work/update
touch /work/stop
wait "$L"
"""


def sh(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc


def image() -> str:
    """The systemd image: in the engine already, loaded from its cached tar, or built (apt) and saved."""
    sh(["bash", str(REPO / ".ci" / "docker-engine.sh")], timeout=900)
    base, _built = debian_roots.ensure_tar("trixie", debian_roots.CACHE / "trixie-systemd-debootstrap.log")
    key = hashlib.sha256(f"{base.name} {PACKAGES}".encode()).hexdigest()[:16]
    tag = f"visionpack-systemd-e2e:{key}"
    cached = debian_roots.CACHE / f"debian-trixie-systemd-{key}.tar"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    if cached.is_file():
        sh(["docker", "load", "-i", str(cached)])
        return tag
    sh(["docker", "import", str(base), f"{tag}-base"])
    build = f"vp-systemd-build-{key}"
    subprocess.run(["docker", "rm", "-f", build], capture_output=True)
    install = f"apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {PACKAGES}"
    sh(
        [
            "docker",
            "run",
            "--name",
            build,
            "--network",
            "host",
            f"{tag}-base",
            "bash",
            "-c",
            install + " && apt-get clean",
        ]
    )
    sh(["docker", "commit", "--change", 'CMD ["/sbin/init"]', build, tag])
    sh(["docker", "rm", "-f", build])
    sh(["docker", "rmi", f"{tag}-base"])
    sh(["docker", "save", "-o", str(cached) + ".part", tag])
    Path(str(cached) + ".part").rename(cached)
    return tag


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A booted systemd container (its name) and the host directory it sees as /work."""
    tag = image()
    work = tmp_path_factory.mktemp("systemd-work")
    work.chmod(0o755)
    name = f"vp-systemd-e2e-{work.name}"
    run = ["docker", "run", "-d", "--name", name, "--network", "host", "--cap-add", "SYS_ADMIN"]
    run += ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "-e", "container=docker"]
    run += [
        "--tmpfs",
        "/run",
        "--tmpfs",
        "/run/lock",
        "-v",
        f"{REPO}:/pkg:ro",
        "-v",
        f"{work}:/work",
        tag,
        "/sbin/init",
    ]
    sh(run)
    try:
        deadline = time.monotonic() + 120
        state = ""
        while state not in ("running", "degraded"):
            assert time.monotonic() < deadline, f"systemd did not boot: {state}"
            state = exec_(name, "systemctl is-system-running", check=False).stdout.strip()
            time.sleep(0.2)
        yield name, work
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)


def exec_(name: str, script: str, *, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    cmd = ["docker", "exec", "-e", f"PORT={PORT}", name, "bash", "-c", script]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{script}\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
    return proc


def installer(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return exec_(name, "python3 /pkg/package/Install/install.py --root /opt/vp " + " ".join(args))


def main_pid(name: str) -> int:
    return int(exec_(name, f"systemctl show -p MainPID --value {UNIT}").stdout.strip() or 0)


def test_install_systemd_supervises_upgrades_and_removes(box: tuple[str, Path]) -> None:
    name, work = box
    started = time.monotonic()
    (work / "client.py").write_text(CLIENT)
    (work / "loop.py").write_text(LOOP)
    update_package(work / "update")
    installer(name, "fingerprint", "--out", "/work/request.json")
    vendor = work / "vendor"
    subprocess.run([sys.executable, str(VENDOR), "keygen", "--out", str(vendor)], check=True, timeout=120)
    issue = ["issue", "--key", str(next(vendor.glob("*.key"))), "--request", str(work / "request.json")]
    issue += ["--out", str(work / "license.lic"), "--days", "30", "--customer", "systemd", "--instances", "8"]
    subprocess.run([sys.executable, str(VENDOR), *issue], check=True, capture_output=True, timeout=120)
    (work / "vendor.pub").write_bytes(next(vendor.glob("*.pub")).read_bytes())
    exec_(name, "mkdir -p /opt/vp/licenses && cp /work/vendor.pub /opt/vp/licenses/")
    installer(name, "lu", "/work/license.lic")

    out = installer(name, "install", "demo-classify", "--systemd", "--host", "127.0.0.1", "--port", str(PORT)).stdout
    assert f"started {UNIT}" in out, out
    assert exec_(name, f"systemctl is-active {UNIT}; systemctl is-enabled {UNIT}").stdout.split() == [
        "active",
        "enabled",
    ]
    exec_(name, f"python3 /work/client.py {PORT} /work/answer-install.json")
    assert json.loads((work / "answer-install.json").read_text())["results"][0]["name"] == "tiger cat"
    pid = main_pid(name)
    user = exec_(name, f"ps -o user= -p {pid}; grep NoNewPrivs /proc/{pid}/status").stdout.split()
    assert user == ["visionpack", "NoNewPrivs:", "1"], user

    exec_(name, f"kill -9 {pid}")
    deadline = time.monotonic() + 180
    while main_pid(name) in (0, pid):
        assert time.monotonic() < deadline, "Restart=on-failure did not bring the master back"
        time.sleep(0.2)
    exec_(name, f"python3 /work/client.py {PORT} /work/answer-restarted.json")  # waits for the workers
    assert exec_(name, f"systemctl show -p NRestarts --value {UNIT}").stdout.strip() == "1"

    exec_(name, UPGRADE_UNDER_LOAD)
    loop = json.loads((work / "loop.json").read_text())
    assert loop["failed"] == [] and loop["ok"] > 0, loop
    status = json.loads(installer(name, "status", "demo-classify", "--json").stdout)["deploys"][0]
    assert status["release"].endswith(".1") and status["unit_state"] == "active", status
    assert status["pid"] == main_pid(name), status  # the new master runs inside the unit

    installer(name, "rollback", "demo-classify")
    exec_(name, f"python3 /work/client.py {PORT} /work/answer-rollback.json")
    installer(name, "remove", "demo-classify")
    gone = exec_(name, f"systemctl is-enabled {UNIT}; ls /etc/systemd/system", check=False).stdout
    assert "visionpack-" not in gone and "not-found" in gone, gone
    print(f"systemd e2e: {time.monotonic() - started:.0f} s")
