"""Each Python's runtime lock installs on that Python from the wheelhouse alone (pip --dry-run).

For every CPython of tools/download/lockfile.PYTHONS other than 3.11 (which every other test
installs) that this machine has (pyenv's or /usr/bin's), ``pip install --dry-run --no-index
--require-hashes --only-binary=:all:`` resolves the whole lock from original/wheels: tags, hashes,
Requires-Python and dependencies all fit. The Debian matrix (tests/e2e/test_debian_matrix.py)
installs and serves for real on 3.9, 3.11 and 3.13.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

from tests.paths import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.download import lockfile  # noqa: E402


def interpreter(python: str) -> str | None:
    for candidate in [f"/usr/bin/python{python}", *sorted(glob.glob(f"/root/.pyenv/versions/{python}.*/bin/python"))]:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def test_each_pythons_lock_resolves_from_the_wheelhouse_alone() -> None:
    checked = []
    for python in [p for p in lockfile.PYTHONS if p != lockfile.DEFAULT_PYTHON]:
        exe = interpreter(python)
        if exe is None:
            continue
        lock = REPO / lockfile.runtime_lock(python)
        cmd = [exe, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--dry-run"]
        cmd += ["--ignore-installed", "--no-index", "--find-links", str(REPO / "original/wheels")]
        cmd += ["--require-hashes", "--only-binary=:all:", "-r", str(lock)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        proc = subprocess.run(
            ["unshare", "-n", *cmd],
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, "PIP_CONFIG_FILE": os.devnull},
        )
        assert proc.returncode == 0, (python, proc.stdout[-2000:] + proc.stderr[-2000:])
        would = proc.stdout.split("Would install", 1)[1].split()
        assert len(would) == len(lockfile.parse_lock(lock)), (python, would)
        assert any(w.startswith("paddlepaddle-3.3.1") for w in would), would
        checked.append(python)
    if checked:
        return
    # no other CPython on this machine: this interpreter's own lock the same way
    lock = REPO / lockfile.runtime_lock(f"{sys.version_info[0]}.{sys.version_info[1]}")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed", "--no-index"]
        + ["--find-links", str(REPO / "original/wheels"), "--require-hashes", "--only-binary=:all:", "-r", str(lock)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
