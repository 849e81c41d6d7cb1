"""Running a snippet in a deploy's runtime venv (the only place with paddle, cryptography ...).

The snippet runs isolated (``-I``: no user site, PYTHON* variables ignored) with the release's
package put first on sys.path by the snippet itself, a small clean environment and a timeout,
so a hung or crashing runtime is reported instead of hanging the diagnosis.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

PRELUDE = "import sys, json\nsys.path.insert(0, sys.argv[1])\n"


def run(python: Path, package_dir: Path, code: str, args: list[str], timeout: float = 120.0) -> tuple[Any | None, str]:
    """(JSON the snippet printed last, or None; error text)."""
    if not os.access(python, os.X_OK):
        return None, f"{python} is missing or not executable"
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/tmp")}
    try:
        p = subprocess.run(
            [str(python), "-I", "-c", PRELUDE + code, str(package_dir), *args],
            capture_output=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"{python} did not finish within {timeout:.0f} s"
    except OSError as exc:
        return None, f"cannot run {python}: {exc.strerror}"
    out = p.stdout.decode("utf-8", "replace").strip().splitlines()
    # Paddle's C++ may print on stdout too; our answer is the last line.
    if p.returncode == 0 and out:
        try:
            return json.loads(out[-1]), ""
        except ValueError:
            pass
    err = p.stderr.decode("utf-8", "replace").strip().splitlines()
    return None, f"{python} exited with status {p.returncode}: " + (
        err[-1] if err else (out[-1] if out else "no output")
    )
