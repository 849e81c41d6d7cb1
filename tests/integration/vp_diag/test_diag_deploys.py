"""vp_diag's journal checks against real pids: the repair command for each kind of interrupted
operation whose installer is gone (installer/recovery.py), and a warning for one running now."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.paths import REPO
from tests.unit.vp_diag.test_deploys import _check


def _gone_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def tool(tmp_path, *args):
    return f"python3 {REPO}/package/Install/install.py --root {tmp_path} " + " ".join(args)


def test_uncommitted_install_is_undone_then_installed_again(tmp_path):
    r = _check(tmp_path, {"op": "install", "step": "release", "pid": _gone_pid(), "release": "2.0.0"})
    assert r.status == "FAIL" and "interrupted 'install' stopped at step 'release'" in r.detail
    assert r.fix == [tool(tmp_path, "stop", "d") + "  # undoes the half-done install", tool(tmp_path, "install", "d")]


def test_committed_install_only_needs_its_record_cleared(tmp_path):
    r = _check(tmp_path, {"op": "install", "step": "start", "pid": _gone_pid(), "release": "1.0.0"})
    assert r.status == "FAIL" and r.fix[0].startswith(tool(tmp_path, "start", "d"))


def test_interrupted_remove_is_finished(tmp_path):
    r = _check(tmp_path, {"op": "remove", "step": "files", "pid": _gone_pid()})
    assert r.fix == [tool(tmp_path, "remove", "d") + "  # finishes the removal"]


def _wait_for_exec(pid: int) -> None:
    # Between fork and exec the child's cmdline is still pytest's; the check looks for install.py.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if b"install.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            pass
        time.sleep(0.01)


def test_operation_running_now_only_warns(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "install.py"])
    try:
        _wait_for_exec(p.pid)
        r = _check(tmp_path, {"op": "install", "step": "runtime", "pid": p.pid})
        assert r.status == "WARN" and "running right now" in r.detail
    finally:
        p.kill()
        p.wait()
