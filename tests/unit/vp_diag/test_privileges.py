"""trouble_shooting privileges checks: who the master runs as, files open to other users."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import privileges  # noqa: E402
from vp_diag.core import FAIL, PASS, WARN, Context, Deploy  # noqa: E402


def ctx_for(root: Path) -> Context:
    return Context(roots=[root], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")


def deploy(root: Path) -> Deploy:
    d = Deploy(root=root, name="d", state={"release": "1.0.0", "service": "face"})
    for sub in ("data", "logs", "run"):
        (d.dir / sub).mkdir(parents=True, mode=0o750)
        os.chmod(d.dir / sub, 0o750)
    (root / "licenses").mkdir()
    (root / "licenses" / "license.lic").write_text("{}")
    os.chmod(root / "licenses" / "license.lic", 0o640)
    return d


def test_modes_pass_and_name_what_others_can_read(tmp_path):
    ctx, d = ctx_for(tmp_path), deploy(tmp_path)
    (d.dir / "data" / "gallery.db").write_text("faces")
    os.chmod(d.dir / "data" / "gallery.db", 0o640)
    assert privileges.modes_check(ctx, d).status == PASS
    os.chmod(d.dir / "data" / "gallery.db", 0o644)
    os.chmod(tmp_path / "licenses" / "license.lic", 0o644)
    (d.dir / "releases").mkdir()
    (d.dir / "releases" / "x").write_text("")
    os.chmod(d.dir / "releases" / "x", 0o666)
    r = privileges.modes_check(ctx, d)
    assert r.status == WARN and r.detail.startswith("3 path(s)")
    assert any("gallery.db" in line and line.startswith("0644") for line in r.lines)
    assert f"--root {tmp_path} restart d" in r.fix[0]


def test_world_writable_slot_directory_fails(tmp_path):
    ctx = ctx_for(tmp_path)
    shared = tmp_path / "var-lib"
    (shared / "instances").mkdir(parents=True)
    (shared / "instances" / "slot-0.lock").write_text("")
    os.chmod(shared / "instances", 0o3770)
    os.chmod(shared / "instances" / "slot-0.lock", 0o660)
    assert privileges.shared_state_check(ctx, shared).status == PASS
    os.chmod(shared / "instances" / "slot-0.lock", 0o666)
    os.chmod(shared / "instances", 0o1777)
    r = privileges.shared_state_check(ctx, shared)
    assert r.status == FAIL and "make every start refuse" in r.detail and len(r.lines) == 2  # dir and slot file


def test_a_master_running_as_root_is_a_warning(tmp_path):
    ctx, d = ctx_for(tmp_path), deploy(tmp_path)
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "status").write_text("Name:\tgunicorn\nUid:\t0\t0\t0\t0\n")
    (d.dir / "run" / "gunicorn.pid").write_text("42\n")
    assert privileges.user_check(ctx, d, proc) is None  # not known to run
    ctx.set_deploy_fact(d, "running", True)
    r = privileges.user_check(ctx, d, proc)
    assert r.status == WARN and "runs as root" in r.detail and r.fix == [ctx.install_cmd(tmp_path, "restart", "d")]
    (proc / "42" / "status").write_text("Name:\tgunicorn\nUid:\t10001\t10001\t10001\t10001\n")
    r = privileges.user_check(ctx, d, proc)
    assert r.status == PASS and ("visionpack" in r.detail or "uid 10001" in r.detail)
