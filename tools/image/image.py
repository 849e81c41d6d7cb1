"""Inputs, cache decision and record of the runtime image built by tools/image/build_image.sh.

Standard library only (runs with the system python3 before any venv exists).

The image is a function of its inputs: the lock file's sha256 (which pins every wheel by hash),
the Debian suite/variant/package list of the root filesystem, and ``BUILD_VERSION`` (bumped
whenever build_image.sh or the files it copies into the image change what comes out). The
mirror is recorded but is not an input: every Debian mirror serves the same suite.

    python3 tools/image/image.py inputs  --root REPO      the inputs as JSON
    python3 tools/image/image.py check   --root REPO      exit 0 if original/images/ holds the image for them
    python3 tools/image/image.py record  --root REPO --tar T --image-id ID --seconds S
    python3 tools/image/image.py mirror                   the Debian mirror of /etc/apt/sources.list*
    python3 tools/image/image.py prune   --root REPO      remove image files of other inputs
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

# The package's standard-library file primitives are shared, not copied: package/ goes on the
# path after whatever is there (a process that already imports a visionpack keeps it).
if str(Path(__file__).resolve().parents[2] / "package") not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parents[2] / "package"))
from visionpack.fsutil import sha256_file  # noqa: E402

# Bump when build_image.sh, visionpack-serve or visionpack-healthcheck change the image's content.
BUILD_VERSION = 1
SUITE = "bookworm"  # Debian 12: python3 is 3.11, matching the cp311 wheelhouse
VARIANT = "minbase"
# libgomp1: paddlepaddle's libpaddle.so links the system OpenMP runtime.
PACKAGES = ("python3", "python3-venv", "libgomp1")
IMAGE_NAME = "visionpack-runtime"
VENV = "/opt/visionpack/venv"
# The service user of the image. Fixed numbers (not the host's users) so file ownership of
# data/, logs/ and run/ means the same on every machine: see docs/docker.md.
UID = GID = 10001
USER = "visionpack"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def inputs(repo: Path) -> dict[str, Any]:
    lock = repo / "original" / "requirements.lock"
    lock_sha = sha256_file(lock)
    return {
        "build_version": BUILD_VERSION,
        "lock_sha256": lock_sha,
        "suite": SUITE,
        "variant": VARIANT,
        "packages": list(PACKAGES),
        "venv": VENV,
        "uid": UID,
        "gid": GID,
    }


def key(inp: dict[str, Any]) -> str:
    return inp["lock_sha256"][:16]


def tag(inp: dict[str, Any]) -> str:
    return f"{IMAGE_NAME}:{key(inp)}"


def tar_path(repo: Path, inp: dict[str, Any]) -> Path:
    return repo / "original" / "images" / f"{IMAGE_NAME}-{key(inp)}.tar"


def rootfs_key(inp: dict[str, Any]) -> str:
    """Cache key of the bare debootstrap tarball: independent of the lock, so a new lock reuses it."""
    text = json.dumps({k: inp[k] for k in ("suite", "variant", "packages", "build_version")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_path(tar: Path) -> Path:
    return tar.with_suffix(".json")


def sums_path(tar: Path) -> Path:
    return tar.with_name(tar.name + ".sha256")


def check(repo: Path, *, deep: bool = False) -> str | None:
    """None if the image for the current inputs is present and intact, else why not."""
    inp = inputs(repo)
    tar = tar_path(repo, inp)
    if not tar.is_file():
        return f"{tar.name} is missing"
    try:
        rec = json.loads(record_path(tar).read_text(encoding="utf-8"))
        sums_line = sums_path(tar).read_text(encoding="utf-8").split()
    except (OSError, ValueError) as exc:
        return f"its record is unreadable ({exc})"
    if rec.get("inputs") != inp:
        changed = sorted(k for k in inp if (rec.get("inputs") or {}).get(k) != inp[k])
        return f"inputs changed: {', '.join(changed) or 'record'}"
    if not sums_line or sums_line[0] != rec.get("sha256") or tar.stat().st_size != rec.get("size"):
        return f"{tar.name} does not match its record (size or sha256)"
    if deep and sha256_file(tar) != rec["sha256"]:
        return f"{tar.name} is corrupt (sha256)"
    return None


def record(repo: Path, tar: Path, image_id: str, seconds: float, mirror: str) -> dict[str, Any]:
    """Write <tar>.sha256 and <tar minus .tar>.json for a freshly saved image."""
    inp = inputs(repo)
    digest = sha256_file(tar)
    doc = {
        "schema": 1,
        "image": tag(inp),
        "image_id": image_id,
        "file": tar.name,
        "size": tar.stat().st_size,
        "sha256": digest,
        "inputs": inp,
        "mirror": mirror,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 1),
    }
    _atomic(sums_path(tar), f"{digest}  {tar.name}\n")
    _atomic(record_path(tar), json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return doc


def prune(repo: Path) -> list[str]:
    """Remove image files of other inputs (an older lock): images/ holds exactly the current one."""
    keep = tar_path(repo, inputs(repo)).name[: -len(".tar")]
    removed = []
    for path in sorted((repo / "original" / "images").glob(f"{IMAGE_NAME}-*")):
        stem = re.sub(r"(\.tar)?(\.sha256|\.json|\.tmp)?$", "", path.name)
        if stem != keep:
            path.unlink()
            removed.append(path.name)
    return removed


def mirror(sources: list[str] | None = None) -> str:
    """The first Debian (not security) URI of the configured apt sources, else deb.debian.org."""
    files = (
        sources
        if sources is not None
        else sorted(
            glob.glob("/etc/apt/sources.list")
            + glob.glob("/etc/apt/sources.list.d/*.list")
            + glob.glob("/etc/apt/sources.list.d/*.sources")
        )
    )
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for uri, suites in _entries(name, text):
            if "security" in uri or SUITE not in suites:
                continue
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _entries(name: str, text: str) -> list[tuple[str, list[str]]]:
    out = []
    if name.endswith(".sources"):  # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                for uri in fields.get("uris", "").split():
                    out.append((uri, fields.get("suites", "").split()))
    else:
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                out.append((parts[1], [parts[2]]))
    return out


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="image.py", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("inputs", "check", "record", "mirror", "prune", "tag", "tar", "rootfs-key"))
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    p.add_argument("--tar", type=Path)
    p.add_argument("--image-id", default="")
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--mirror", default="")
    p.add_argument("--deep", action="store_true", help="check: also hash the tar")
    a = p.parse_args(argv)
    repo = a.root.resolve()
    if a.what == "mirror":
        print(mirror())
        return 0
    inp = inputs(repo)
    if a.what == "inputs":
        print(json.dumps(inp, indent=2, sort_keys=True))
    elif a.what == "tag":
        print(tag(inp))
    elif a.what == "tar":
        print(tar_path(repo, inp))
    elif a.what == "rootfs-key":
        print(rootfs_key(inp))
    elif a.what == "check":
        why = check(repo, deep=a.deep)
        print("ok" if why is None else why)
        return 0 if why is None else 1
    elif a.what == "record":
        doc = record(repo, a.tar, a.image_id, a.seconds, a.mirror or mirror())
        print(json.dumps(doc, sort_keys=True))
    elif a.what == "prune":
        for name in prune(repo):
            print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
