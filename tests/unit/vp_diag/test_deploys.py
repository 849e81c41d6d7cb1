"""Journal checks: the repair command for each kind of interrupted operation (installer/recovery.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import deploys  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402


def _gone_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _check(tmp_path, op):
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    d = Deploy(root=tmp_path, name="d", state={"release": "1.0.0", "operation": op, "service": "classification"})
    return deploys.operation_check(ctx, d)


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


def test_no_operation_passes(tmp_path):
    assert _check(tmp_path, None).status == "PASS"


def test_deploys_are_found_as_the_installers_layout_lists_them(tmp_path):
    """vp_diag's discovery mirrors layout.Root.deploy_names (reserved and hidden names, state.json)."""
    from vp_diag import discover
    from visionpack.installer.layout import RESERVED, Root

    for name in ("b", "a", ".hidden", *RESERVED, "no-journal"):
        (tmp_path / name).mkdir()
        if name != "no-journal":
            (tmp_path / name / "state.json").write_text("{}")
    assert discover.deploy_names(tmp_path) == Root(tmp_path).deploy_names() == ["a", "b"]
    assert discover.RESERVED == RESERVED
