"""Minimal Debian root filesystems for the portability matrix, built once and cached as tars.

Each is ``debootstrap --variant=minbase --include=python3,python3-venv,libgomp1 <suite>`` from the mirror
apt uses (tools/image/image.py's ``mirror``, like the Docker image builder), archived as
``original/.state/matrix/debian-<suite>-<key>.tar``; the key covers the suite, the packages and
BUILD_VERSION, so a second run (and every test of this one) unpacks the tar instead of
bootstrapping again. One build at a time per tree (a flock), as the image builder does.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import shutil
import subprocess
import time
from pathlib import Path

from tests.paths import REPO

BUILD_VERSION = 1
# What docs/operator-guide.md asks of a server: python3 with venv, and libgomp1, without which
# PaddlePaddle does not import (envcheck warns; only ONNX Runtime / OpenVINO would load).
PACKAGES = ("python3", "python3-venv", "libgomp1")
# suite -> (Debian release, the python3 it ships)
SUITES = {"bullseye": ("11", "3.9"), "bookworm": ("12", "3.11"), "trixie": ("13", "3.13")}
CACHE = REPO / "original" / ".state" / "matrix"


def mirror() -> str:
    spec = importlib.util.spec_from_file_location("vp_image", REPO / "tools" / "image" / "image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    uri: str = module.mirror()
    return uri


def key(suite: str) -> str:
    text = json.dumps({"suite": suite, "packages": PACKAGES, "variant": "minbase", "build": BUILD_VERSION})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tar_path(suite: str) -> Path:
    return CACHE / f"debian-{suite}-{key(suite)}.tar"


def ensure_debootstrap() -> None:
    """Install debootstrap from Debian's packages when missing, as tools/image/build_image.sh does."""
    if shutil.which("debootstrap"):
        return
    if not list(Path("/var/lib/apt/lists").glob("*Packages*")):
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=900)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
        check=True,
        capture_output=True,
        timeout=900,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def ensure_tar(suite: str, log: Path) -> tuple[Path, float]:
    """The cached root tar of ``suite`` and the seconds spent building it (0.0 when reused).
    One build per suite at a time; two suites may build at once."""
    tar = tar_path(suite)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tar.is_file():
            return tar, 0.0
        started = time.monotonic()
        tmp = CACHE / f"{suite}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with open(log, "ab") as out:
            subprocess.run(
                ["nice", "-n", "10", "debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES)]
                + [suite, str(tmp), mirror()],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=1800,
            )
        # Downloaded .debs and package lists are not part of a server's root; they would only grow the tar.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (tmp / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        subprocess.run(
            ["tar", "-C", str(tmp), "--numeric-owner", "-cf", str(tar) + ".tmp", "."], check=True, timeout=600
        )
        Path(str(tar) + ".tmp").rename(tar)
        shutil.rmtree(tmp)
        for old in CACHE.glob(f"debian-{suite}-*.tar"):
            if old != tar:
                old.unlink()
        return tar, time.monotonic() - started


def unpack(tar: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "--numeric-owner", "-xf", str(tar)], check=True, timeout=600)
    return dest
