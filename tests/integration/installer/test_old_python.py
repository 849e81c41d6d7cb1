"""install.py under Python 2 or a Python 3 older than 3.9: one line naming the Python to use, exit 10.

Real old interpreters are used where the machine has them (pyenv's 2.7/3.6/3.7/3.8 here, Debian's
python2 where installed); the guard is also run under a stub (this interpreter with sys.version_info
set to 2.7.18 before install.py runs), so the check runs everywhere.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

from tests.paths import PACKAGE

INSTALL = PACKAGE / "Install" / "install.py"
EXIT_ENVIRONMENT = 10  # EnvironmentCheckFailed, README error table
LINE = "error: install.py needs CPython 3.9 to 3.13 (this is Python {}): run it as 'python3 package/Install/install.py"


def old_interpreters() -> list[str]:
    found = [shutil.which(name) for name in ("python2", "python2.7")]
    found += sorted(glob.glob("/root/.pyenv/versions/2.*/bin/python")) + sorted(
        glob.glob("/root/.pyenv/versions/3.[678].*/bin/python")
    )
    # pyenv's shims answer "command not found" for versions that are not selected: keep real ones
    return sorted({os.path.realpath(p) for p in found if p and "/shims/" not in p})


def check(proc: subprocess.CompletedProcess[str], version: str) -> None:
    assert proc.returncode == EXIT_ENVIRONMENT, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(LINE.format(version)), proc.stderr


def test_stub_python2_gets_one_line_and_exit_10() -> None:
    stub = (
        "import sys; sys.version_info = (2, 7, 18, 'final', 0); sys.version = '2.7.18 (stub)'; "
        f"sys.argv = [{str(INSTALL)!r}, 'install', 'demo-classify']; "
        f"exec(compile(open({str(INSTALL)!r}).read(), {str(INSTALL)!r}, 'exec'), {{'__name__': '__main__'}})"
    )
    check(subprocess.run([sys.executable, "-c", stub], capture_output=True, text=True, timeout=60), "2.7.18")


def test_real_old_pythons_get_one_line_and_exit_10() -> None:
    for python in old_interpreters():
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
        proc = subprocess.run(
            [python, str(INSTALL), "install", "demo-classify"], capture_output=True, text=True, timeout=60
        )
        check(proc, version)
    # the file stays Python 2 syntax (ASCII, no f-strings): py_compile by the oldest one, if any
    for python in old_interpreters()[:1]:
        code = f"compile(open({str(INSTALL)!r}).read(), 'install.py', 'exec')"  # py_compile would write a .pyc
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
    assert INSTALL.read_bytes().isascii()
