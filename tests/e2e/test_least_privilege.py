"""Least privilege with a real install (issue 14 item 4), the slot message of ``status`` (item 6)
and the address ``install`` says it listens on (item 3).

One root, shared by the tests of this module in order (installs are the slow part): the
session's stand-in package (tests/integration/test_installer_fixtures.py: real install.py, real
gunicorn, a tiny Flask app) installed by root, then upgraded, rolled back and given a new license,
each time after the root was "aged" to what the previous installer left (root-owned 0644 data and
logs, a 0644 license, a world-writable file, a 1777 state directory, a 0666 slot file). After
each command the services must run as ``visionpack`` (master and workers, read from
/proc/<pid>/status) and every file must have its mode again. Then: a local user outside the
service group can neither hold nor block a slot, and a non-root operator installs into a root of
their own, the services running as them.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_installer_fixtures import (  # noqa: E402,F401
    DEPLOY,
    REPO,
    free_port,
    kill_leftovers,
    new_root,
    run_installer,
    shared_runtime,
    source_tree,
    status_json,
    traversable,
    trial_license,
    wheelhouse,
)
from test_installer_upgrade import version_tree  # noqa: E402

from visionpack.installer import serviceuser  # noqa: E402
from visionpack.licensing import instances  # noqa: E402

SHARED = Path("/var/lib/visionpack")


def ids_of(pid: int) -> tuple[list[int], list[int], str]:
    """(real, effective, saved, fs uids), (the same gids), supplementary groups of ``pid``."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return ([int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()], fields["Groups"].strip())


def assert_runs_as(st: dict, uid: int, gid: int) -> None:
    pids = [st["pid"], *st["worker_pids"]]
    assert st["worker_pids"], st
    for pid in pids:
        uids, gids, groups = ids_of(pid)
        assert uids == [uid] * 4 and gids == [gid] * 4, (pid, uids, gids)
        assert groups == "", (pid, groups)  # none of root's supplementary groups


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_modes(root: Path, uid: int, gid: int) -> None:
    """The policy of installer/filemodes.py, on the whole root and /var/lib/visionpack."""
    for base, dirs, files in os.walk(root):  # does not follow the .runtime symlink
        for name in dirs + files:
            p = Path(base) / name
            if not p.is_symlink():
                assert not mode(p) & 0o002, f"{p} is world-writable ({mode(p):o})"
    d = root / DEPLOY
    for sub in ("data", "logs", "run"):
        for base, dirs, files in os.walk(d / sub):
            for name in [""] + dirs + files:
                p = Path(base) / name
                if p.is_symlink():
                    continue
                st = os.lstat(p)
                shared = st.st_uid == 0 and st.st_gid == gid  # root:<group> on purpose (access.json, flags)
                assert (st.st_uid, st.st_gid) == (uid, gid) or shared or p.name == "serve-public", (
                    f"{p} owned by {st.st_uid}:{st.st_gid}"
                )
                # gunicorn makes its pid file 0644 itself: run/ (0750) is what keeps others out.
                closed = 0o022 if sub == "run" else 0o027
                assert not mode(p) & closed, f"{p} is {mode(p):o}: group-writable or open to others"
    assert mode(d / "data") == mode(d / "logs") == mode(d / "run") == 0o750
    lic = root / "licenses"
    assert (os.stat(lic).st_uid, os.stat(lic).st_gid, mode(lic)) == (0, gid, 0o2750)
    for f in lic.iterdir():
        assert (os.stat(f).st_uid, os.stat(f).st_gid, mode(f)) == (0, gid, 0o640), f
    assert (os.stat(SHARED).st_uid, mode(SHARED)) == (0, 0o755)
    for sub in ("instances", "state"):
        assert (os.stat(SHARED / sub).st_uid, mode(SHARED / sub)) == (uid, 0o3770), sub
    for f in (SHARED / "instances").iterdir():
        assert (os.stat(f).st_uid, mode(f)) == (uid, 0o660), f
    for f in (SHARED / "state").iterdir():
        assert os.stat(f).st_uid == uid and not mode(f) & 0o007, f


def age(root: Path, master_pid: int) -> None:
    """What the previous installer left: root-owned, world-readable data and logs, an open license."""
    d = root / DEPLOY
    db = d / "data" / "gallery.db"
    db.write_text("faces")
    for p in (db, d / "logs" / "error.log", d / "logs" / "gunicorn.out"):
        os.chown(p, 0, 0)
        os.chmod(p, 0o644)
    os.chmod(d / "data", 0o755)
    os.chown(root / "licenses", 0, 0)
    os.chmod(root / "licenses", 0o755)
    for f in (root / "licenses").iterdir():
        os.chown(f, 0, 0)
        os.chmod(f, 0o644)
    stray = d / "releases"
    stray = next(p for p in stray.iterdir() if p.is_dir()) / "package" / "stray.txt"
    stray.write_text("x")
    os.chmod(stray, 0o666)
    os.chmod(SHARED / "state", 0o1777)  # services of every user could write there before
    held = [h["slot"] for h in instances.holders() if h.get("pid") == master_pid]
    assert held, "the master holds a slot"
    slot = SHARED / "instances" / f"slot-{held[0]}.lock"
    os.chown(slot, 0, 0)
    os.chmod(slot, 0o666)


@pytest.fixture(scope="module")
def site(tmp_path_factory, shared_runtime, source_tree, trial_license, wheelhouse):
    base = tmp_path_factory.mktemp("least-privilege")
    root = new_root(base, shared_runtime)
    port = free_port()
    proc = run_installer(source_tree, root, "install", DEPLOY, "--host", "127.0.0.1", "--port", str(port))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = pwd.getpwnam(serviceuser.NAME)
    yield {"root": root, "port": port, "base": base, "uid": ids.pw_uid, "gid": ids.pw_gid, "install": proc}
    run_installer(source_tree, root, "stop", DEPLOY)
    kill_leftovers(root)


def test_install_creates_the_service_user_and_runs_master_and_workers_as_it(site, source_tree):
    ent = pwd.getpwnam(serviceuser.NAME)
    # The Docker image's numbers where they were free; no login shell, no home.
    assert ent.pw_shell.endswith(("nologin", "false")) and not Path(ent.pw_dir).exists()
    assert grp.getgrgid(ent.pw_gid).gr_name == serviceuser.NAME
    if ent.pw_uid == serviceuser.UID:
        assert ent.pw_gid == serviceuser.GID
    st = status_json(source_tree, site["root"])
    assert (st["state"], st["ready"]) == ("running", True)
    assert_runs_as(st, site["uid"], site["gid"])
    assert_modes(site["root"], site["uid"], site["gid"])
    assert "service-user: services run as visionpack" in site["install"].stdout


def test_install_prints_the_address_it_listens_on(site):
    out = site["install"].stdout
    assert f"listening on http://127.0.0.1:{site['port']}/ (this machine only)" in out, out


def test_upgrade_of_an_aged_root_repairs_modes_and_hands_over_to_the_service_user(
    site, source_tree, tmp_path_factory, wheelhouse
):
    root = site["root"]
    before = status_json(source_tree, root)
    age(root, before["pid"])
    v2 = version_tree(tmp_path_factory.mktemp("lp-v2"), wheelhouse, source_tree, "1.1.0")
    proc = run_installer(source_tree, root, "upgrade", DEPLOY, "--package", str(v2))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = status_json(source_tree, root)
    assert (st["release"], st["ready"]) == ("1.1.0", True) and st["pid"] != before["pid"]
    assert_runs_as(st, site["uid"], site["gid"])
    assert_modes(root, site["uid"], site["gid"])
    assert (root / DEPLOY / "data" / "gallery.db").read_text() == "faces"

    age(root, st["pid"])
    proc = run_installer(source_tree, root, "rollback", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    st = status_json(source_tree, root)
    assert (st["release"], st["ready"]) == ("1.0.0", True)
    assert_runs_as(st, site["uid"], site["gid"])
    assert_modes(root, site["uid"], site["gid"])


def _vendor(site: dict, pub: Path, *args: str) -> None:
    base = pub.parent.parent  # trial_license's vendor directory: keys/ and request.json
    python = next((site["root"] / ".runtime").glob("*/bin/python"))
    proc = subprocess.run(
        [
            str(python),
            str(REPO / "vendor" / "visionpack_vendor.py"),
            "issue",
            "--key",
            str(next((base / "keys").glob("*.key"))),
            "--request",
            str(base / "request.json"),
            "--days",
            "30",
            "--customer",
            "least-privilege",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lu_keeps_the_license_readable_by_the_service_only(site, source_tree, trial_license):
    root = site["root"]
    age(root, status_json(source_tree, root)["pid"])
    proc = run_installer(source_tree, root, "lu", str(trial_license[1]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_modes(root, site["uid"], site["gid"])
    # The service user reads it: a restart checks the license in the new master (on_starting).
    proc = run_installer(source_tree, root, "restart", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_runs_as(status_json(source_tree, root), site["uid"], site["gid"])


def test_status_says_all_slots_in_use_not_license_invalid(site, source_tree, trial_license):
    """A running deploy whose license's every slot is taken (by itself, and maybe by others)."""
    root = site["root"]
    one = site["base"] / "one-instance.lic"
    _vendor(site, trial_license[0], "--out", str(one), "--instances", "1")
    try:
        assert run_installer(source_tree, root, "lu", str(one)).returncode == 0
        proc = run_installer(source_tree, root, "status", DEPLOY)
        assert proc.returncode == 0, proc.stderr
        assert "NOT valid" not in proc.stdout, proc.stdout
        assert "instances: all 1 licensed slots in use" in proc.stdout and "this deploy holds one" in proc.stdout
        lic = status_json(source_tree, root)["license"]
        assert (lic["ok"], lic["instances"], lic["slots_full"], lic["can_start"]) == (True, 1, True, True)
        assert lic["instances_running"] >= 1
    finally:
        assert run_installer(source_tree, root, "lu", str(trial_license[1])).returncode == 0
    lic = status_json(source_tree, root)["license"]
    assert (lic["ok"], lic["instances"]) == (True, 64) and "slots_full" in lic


@pytest.fixture(scope="module")
def stranger():
    """A throwaway local user outside the service group."""
    name = f"vpt{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True
    )
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], capture_output=True)


def test_a_local_user_cannot_hold_or_block_a_slot(site, source_tree, stranger):
    code = (
        "import fcntl, json, os, sys\n"
        "out = {}\n"
        "for name in sorted(os.listdir(sys.argv[1])) if os.access(sys.argv[1], os.R_OK) else ['slot-0.lock']:\n"
        "    try:\n"
        "        fd = os.open(os.path.join(sys.argv[1], name), os.O_RDONLY | os.O_CREAT, 0o644)\n"
        "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        out[name] = 'locked'\n"
        "    except OSError as exc:\n"
        "        out[name] = exc.strerror\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        ["/usr/bin/python3", "-c", code, str(SHARED / "instances")],
        capture_output=True,
        text=True,
        timeout=60,
        user=stranger.pw_uid,
        group=stranger.pw_gid,
        extra_groups=[],
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out and set(out.values()) == {"Permission denied"}, out
    # and root's restart still gets its slot
    proc = run_installer(source_tree, site["root"], "restart", DEPLOY)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_non_root_operator_installs_into_a_root_of_their_own(site, source_tree, shared_runtime, tmp_path_factory):
    """Services then run as that operator. A member of the service group, as docs/operator-guide.md
    says, so its services count in the machine-wide slots."""
    name = f"vpo{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", serviceuser.NAME, name],
        check=True,
        capture_output=True,
    )
    op = pwd.getpwnam(name)
    base = traversable(tmp_path_factory.mktemp("operator"))
    root = base / "root"
    root.mkdir()
    os.symlink(shared_runtime, root / ".runtime")
    for p in (root, root / ".runtime"):
        os.chown(p, op.pw_uid, op.pw_gid, follow_symlinks=False)
    traversable(source_tree)  # the operator reads the package (its files are 0644 already)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "LANG": "C.UTF-8"}
    cmd = ["/usr/bin/python3", str(source_tree / "package" / "Install" / "install.py"), "--root", str(root)]
    try:
        proc = subprocess.run(
            cmd + ["install", DEPLOY, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            user=op.pw_uid,
            group=op.pw_gid,
            extra_groups=[grp.getgrnam(serviceuser.NAME).gr_gid],
            cwd=str(base),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"services run as {name}" in proc.stdout
        st = status_json(source_tree, root)
        assert (st["state"], st["ready"]) == ("running", True)
        for pid in [st["pid"], *st["worker_pids"]]:
            assert ids_of(pid)[0] == [op.pw_uid] * 4
        assert os.stat(root / DEPLOY / "data").st_uid == op.pw_uid and mode(root / DEPLOY / "data") == 0o750
        proc = subprocess.run(
            cmd + ["stop", DEPLOY],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            user=op.pw_uid,
            group=op.pw_gid,
            cwd=str(base),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        kill_leftovers(root)
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
