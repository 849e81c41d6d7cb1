"""The ONNX converter's own wheels: fetch them by original/convert.lock and install them into the build env.

    python3 -m tools.convert.convert_env [--root DIR] [--buildenv DIR]   # download.sh's model build step
    python3 -m tools.convert.convert_env --lock                           # maintainer: regenerate the lock

Standard library only (download.sh runs it with the host's python3). The converter (paddle2onnx +
onnx, original/convert.in) is a build-time tool of the vendor's connected machine: its wheels go to
original/.state/convert-wheels/, never into the shipped wheelhouse, and are installed with
``--no-deps`` into the build environment that already holds numpy and protobuf from the runtime lock.
A stamp inside the build environment (the lock's sha256) makes a second run a no-op; a rebuilt build
environment loses the stamp with everything else and gets the converter again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools.convert` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tools.convert"

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = "original/convert.lock"
SOURCE = "original/convert.in"
WHEELS = "original/.state/convert-wheels"
BUILDENV = "original/.state/buildenv"
STAMP = ".convert-lock-sha256"  # inside the build environment: it goes when the environment goes
EXIT_OK, EXIT_FAILED = 0, 7  # 7: download.sh's EXIT_BUILDENV


def lock_sha(root: Path) -> str:
    return hashlib.sha256((root / LOCK).read_bytes()).hexdigest()


def installed(root: Path, buildenv: Path) -> bool:
    """True when ``buildenv`` already holds the converter of the current lock."""
    stamp = buildenv / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == lock_sha(root)


def fetch(root: Path) -> None:
    """Make original/.state/convert-wheels hold exactly the lock's files (hash-checked, cached)."""
    from tools.download.fetch import Fetcher

    Fetcher(root).sync("converter wheels", root / LOCK, root / WHEELS, True)


def install(root: Path, buildenv: Path) -> None:
    """pip-install the locked converter wheels into ``buildenv`` (no index, hashes required, no deps)."""
    python = buildenv / "bin" / "python"
    cmd = [
        str(python),
        "-m",
        "pip",
        "--isolated",
        "install",
        "--disable-pip-version-check",
        "--no-index",
        "--no-deps",
        "--find-links",
        str(root / WHEELS),
        "--require-hashes",
        "--only-binary=:all:",
        "-r",
        str(root / LOCK),
    ]
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"installing the converter into {buildenv} failed (exit {proc.returncode}):\n{tail}")
    (buildenv / STAMP).write_text(lock_sha(root) + "\n", encoding="utf-8")


def ensure(root: Path, buildenv: Path) -> str:
    """Fetch and install the converter unless the build environment already has this lock's."""
    if not (buildenv / "bin" / "python").is_file():
        raise RuntimeError(f"no build environment at {buildenv}: download.sh creates it first")
    if installed(root, buildenv):
        return f"converter: reused (convert.lock unchanged: sha256 {lock_sha(root)[:16]}...)"
    fetch(root)
    install(root, buildenv)
    return f"converter: installed into {buildenv} from {WHEELS}"


def write_lock(root: Path) -> None:
    """Resolve original/convert.in (no dependencies, CPython 3.11 manylinux) into original/convert.lock."""
    from tools.download.lock import entries_from_dir, header, pip_download
    from tools.download.lockfile import atomic_write, parse_lock

    with tempfile.TemporaryDirectory(prefix="visionpack-convert-lock-") as tmp:
        pip_download(["--no-deps", "-r", str(root / SOURCE)], Path(tmp))
        entries = entries_from_dir(Path(tmp))
    text = header(SOURCE, entries).replace("tools/download/lock.py", "tools/convert/convert_env.py --lock")
    atomic_write(root / LOCK, text + "".join(e.lock_line() + "\n" for e in entries))
    parse_lock(root / LOCK)
    print(f"wrote {root / LOCK} ({len(entries)} wheels)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="convert_env", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO_ROOT)
    ap.add_argument("--buildenv", type=Path, help=f"build environment (default: ROOT/{BUILDENV})")
    ap.add_argument("--lock", action="store_true", help=f"regenerate {LOCK} from {SOURCE} (needs the index)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    if args.lock:
        write_lock(root)
        return EXIT_OK
    try:
        print(ensure(root, args.buildenv or root / BUILDENV), flush=True)
    except Exception as exc:  # any failure (fetch, lock, pip) is one message and download.sh's exit code
        print(f"convert_env: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
