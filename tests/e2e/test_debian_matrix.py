"""Portability matrix: a new operator's path on minimal Debian 11, 12 and 13 roots, with no network.

Each root is ``debootstrap --variant=minbase`` + python3 + python3-venv only (tests/e2e/debian_roots.py,
cached under original/.state/matrix/ and unpacked once per session). Inside it, in its own network,
mount and PID namespaces (``unshare -n -m -p``: loopback only, nothing left running afterwards), with
this repository bind-mounted read-only at /pkg, the Debian python3 runs:
``install.py fingerprint``; the vendor issues a license for that request (here, on the host);
``install.py lu``; ``install demo-classify``; a classification of samples/cat.jpg over loopback;
``upgrade --package`` to an update package (VERSION bumped) and ``rollback``, each answering again;
``trouble_shooting.sh`` with nothing FAILed; ``remove``. No network is proved by the interfaces the
root sees and by a connection to the apt mirror that cannot be made.

Debian 11 (bullseye) runs its python 3.9.2 on the cp39 lock (original/requirements-cp39.lock: numpy
2.0.2, onnxruntime 1.19.2, openvino 2025.3.0, gunicorn 23.0.0, ...), so the same path proves those
older pins serve the same answer; it needs a wheelhouse built with 3.9 in it (download.sh's default).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import debian_roots
from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.download import lockfile  # noqa: E402

DEPLOY = "demo-classify"
BUNDLE = "efficientnet_lite0_imagenet"
VENDOR = REPO / "vendor" / "visionpack_vendor.py"
# Debian 11 (python 3.9), 12 (3.11), 13 (3.13): the oldest, the default and the newest wheelhouse Python.
SUITES = ("bullseye", "bookworm", "trixie")

CLIENT = r"""
import base64, json, sys, urllib.request
port, out = int(sys.argv[1]), sys.argv[2]
body = json.dumps({"image": base64.b64encode(open("/pkg/package/samples/cat.jpg", "rb").read()).decode(),
                   "top_num": 5}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/demo-classify/ImageClassification", data=body,
                             headers={"Content-Type": "application/json"})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
open(out, "wb").write(opener.open(req, timeout=300).read())
"""

NET_PROOF = r"""
import json, socket, sys
names = sorted(name for _, name in socket.if_nameindex())
try:
    socket.create_connection((sys.argv[1], 80), timeout=10).close()
    reached = "connected"
except OSError as exc:
    reached = type(exc).__name__ + ": " + str(exc)
json.dump({"interfaces": names, "mirror": reached}, open("/work/net.json", "w"))
"""

# Phase 1: the operator's fingerprint request. Phase 2 (after the vendor's license): the rest.
FINGERPRINT = r"""
set -euo pipefail
cd /work
python3 /pkg/package/Install/install.py --root /opt/vp fingerprint --out /work/request.json
"""

SCENARIO = r"""
set -euo pipefail
cd /work
I() { python3 /pkg/package/Install/install.py --root /opt/vp "$@"; }
stamp() { echo "$1 $(date +%s.%N)" >> /work/times.txt; }
python3 /work/net_proof.py "$MIRROR_IP"
python3 -c 'import sys; print("python", sys.version.split()[0])' > /work/python.txt
mkdir -p /opt/vp/licenses && cp /work/vendor.pub /opt/vp/licenses/
stamp lu;        I lu /work/license.lic
stamp install;   I install demo-classify --host 127.0.0.1 --port "$PORT" | tee /work/install.txt
stamp classify;  python3 /work/client.py "$PORT" /work/answer-install.json
stamp upgrade;   I upgrade demo-classify --package /srv/update
python3 /work/client.py "$PORT" /work/answer-upgrade.json
stamp rollback;  I rollback demo-classify
python3 /work/client.py "$PORT" /work/answer-rollback.json
I status demo-classify --json > /work/status.json
ls -d /opt/vp/.runtime/*/lib/python3* > /work/venvs.txt
stamp trouble;   rc=0; bash /pkg/trouble_shooting/trouble_shooting.sh --root /opt/vp demo-classify > /work/trouble.txt 2>&1 || rc=$?
echo "$rc" > /work/trouble.rc
stamp remove;    I remove demo-classify
I list --json > /work/list.json
stamp done
"""  # noqa: E501


def in_root(root: Path, script: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``script`` by the root's bash, chrooted, in new network/mount/PID namespaces (only lo, up)."""
    outer = (
        "set -euo pipefail\n"
        'mount --make-rprivate / && mount --bind "$REPO" "$R/pkg" && mount -o remount,bind,ro "$R/pkg"\n'
        'mount -t proc proc "$R/proc" && mount -t sysfs sysfs "$R/sys" && mount --bind /dev "$R/dev"\n'
        'mount -t tmpfs tmpfs "$R/tmp" && mount -t tmpfs tmpfs "$R/dev/shm"\n'
        "ip link set lo up\n"
        'exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 '
        'PORT="$PORT" MIRROR_IP="$MIRROR_IP" /bin/bash -c "$SCRIPT"\n'
    )
    full = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REPO": str(REPO), "R": str(root), "SCRIPT": script, **env}
    return subprocess.run(
        ["unshare", "--net", "--mount", "--pid", "--fork", "bash", "-c", outer],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def update_package(dest: Path) -> None:
    """An update package inside the root: this repository with VERSION bumped, same locks and wheels."""
    shutil.copytree(REPO / "package", dest / "package", ignore=shutil.ignore_patterns("__pycache__"))
    version = (REPO / "package" / "VERSION").read_text().strip()
    (dest / "package" / "VERSION").write_text(version + ".1\n")
    shutil.copytree(REPO / "start", dest / "start")
    shutil.copytree(REPO / "models" / BUNDLE, dest / "models" / BUNDLE)
    (dest / "licenses").mkdir()
    (dest / "original").mkdir()
    for name in [p.name for p in (REPO / "original").glob("requirements*.lock")] + ["wheelhouse.json"]:
        shutil.copy2(REPO / "original" / name, dest / "original" / name)
    os.symlink("/pkg/original/wheels", dest / "original" / "wheels")  # resolved inside the root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """Each suite's root, unpacked once for this module, with the seconds a build took (0: cached)."""
    assert (REPO / "models" / BUNDLE / "manifest.json").is_file(), "run download.sh first"
    debian_roots.ensure_debootstrap()
    base = tmp_path_factory.mktemp("debian")
    suites = SUITES
    # All built at once when none is cached: most of a debootstrap is waiting on the mirror.
    with concurrent.futures.ThreadPoolExecutor(len(suites)) as pool:
        tars = dict(zip(suites, pool.map(lambda s: debian_roots.ensure_tar(s, base / f"{s}-debootstrap.log"), suites)))
    return {suite: (debian_roots.unpack(tar, base / suite), built) for suite, (tar, built) in tars.items()}


@pytest.mark.parametrize("suite", SUITES)
def test_new_operator_on_minimal_debian(suite: str, roots: dict[str, tuple[Path, float]]) -> None:
    root, built = roots[suite]
    release, python = debian_roots.SUITES[suite]
    shipped, _ = lockfile.build_record(REPO)
    assert python in shipped, f"the wheelhouse has no CPython {python}: run 'bash download.sh' (default 3.9-3.13)"
    work = root / "work"
    work.mkdir()
    (root / "pkg").mkdir()
    (work / "client.py").write_text(CLIENT)
    (work / "net_proof.py").write_text(NET_PROOF)
    update_package(root / "srv" / "update")
    mirror_ip = socket.gethostbyname(debian_roots.mirror().split("/")[2])
    env = {"PORT": "18777", "MIRROR_IP": mirror_ip}

    started = time.monotonic()
    proc = in_root(root, FINGERPRINT, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    vendor = work / "vendor"
    subprocess.run([sys.executable, str(VENDOR), "keygen", "--out", str(vendor)], check=True, timeout=120)
    issue = ["issue", "--key", str(next(vendor.glob("*.key"))), "--request", str(work / "request.json")]
    issue += ["--out", str(work / "license.lic"), "--days", "30", "--customer", f"debian-{release}", "--instances", "8"]
    subprocess.run([sys.executable, str(VENDOR), *issue], check=True, capture_output=True, timeout=120)
    shutil.copy2(next(vendor.glob("*.pub")), work / "vendor.pub")

    proc = in_root(root, SCENARIO, env, timeout=1500)
    seconds = time.monotonic() - started
    log = proc.stdout[-6000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, log

    net = json.loads((work / "net.json").read_text())
    assert net["interfaces"] == ["lo"] and net["mirror"] != "connected", net
    assert (work / "python.txt").read_text().split()[1].startswith(python + "."), (work / "python.txt").read_text()
    for phase in ("install", "upgrade", "rollback"):
        answer = json.loads((work / f"answer-{phase}.json").read_text())
        names = [r["name"] for r in answer["results"][:3]]
        assert {"tabby, tabby cat", "tiger cat", "Egyptian cat"} & set(names), (phase, answer)
    version = (REPO / "package" / "VERSION").read_text().strip()
    st = json.loads((work / "status.json").read_text())["deploys"][0]
    assert (st["state"], st["ready"], st["release"]) == ("running", True, version), st
    trouble = (work / "trouble.txt").read_text()
    assert (work / "trouble.rc").read_text().strip() == "0", trouble
    assert json.loads((work / "list.json").read_text()).get("deploys") in ([], None), log
    # the runtime was built by Debian's own python3 for its own X.Y, from the bind-mounted wheelhouse
    venvs = [Path(p).name for p in (work / "venvs.txt").read_text().split()]
    assert venvs and set(venvs) == {f"python{python}"}, venvs

    # backend: auto measured every backend in this Python's wheels (Debian 11: onnxruntime 1.19.2 and
    # openvino 2025.3.0): each one either served the ONNX rendition / Paddle files or says why not
    tune = [line.strip() for line in (work / "install.txt").read_text().splitlines() if "tune" in line]
    tune += [
        line.strip()
        for line in (work / "install.txt").read_text().splitlines()
        if line.strip().split(":", 1)[0] in ("paddle", "onnxruntime", "openvino")
    ]
    print(f"MATRIX {suite} tune: " + " | ".join(tune))
    for line in tune:
        assert "not chosen: unknown" not in line and not line.endswith("not chosen:"), tune
    stamps = dict(line.split() for line in (work / "times.txt").read_text().splitlines())
    timing = {
        "suite": suite,
        "debian": release,
        "python": python,
        "root_build_s": round(built, 1),
        "install_s": round(float(stamps["classify"]) - float(stamps["install"]), 1),
        "upgrade_s": round(float(stamps["rollback"]) - float(stamps["upgrade"]), 1),
        "total_s": round(seconds, 1),
        "backends": {role: b.get("backend") for role, b in (st.get("backends") or {}).items()},
    }
    print("MATRIX " + json.dumps(timing))
    shutil.rmtree(root)  # its runtime venv alone is over 1 GB
