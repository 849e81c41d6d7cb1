"""filemodes.py: the modes and owners the installer gives, and the repair of what older ones left.

Run as root (as CI and the dev machines do): ownership is the point.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from visionpack.installer import filemodes
from visionpack.installer.layout import Root

SVC = (10001, 10001)


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def owner(p: Path) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.fail("the tests run as root (CI and the dev machines do)")


def old_deploy(tmp_path: Path) -> tuple[Root, Path]:
    """A deploy as the previous installer left it: root's, world-readable, one world-writable file."""
    root = Root(tmp_path / "root")
    d = root.path / "demo-face"
    for sub in ("data/crops", "logs", "run/1.0.0", "releases/1.0.0/package"):
        (d / sub).mkdir(parents=True)
    (d / "state.json").write_text("{}")
    os.chmod(d / "state.json", 0o644)  # modes set here, never left to this process's umask
    (d / "data" / "gallery.db").write_text("faces")
    (d / "data" / "crops" / "1.jpg").write_text("crop")
    (d / "logs" / "error.log").write_text("Traceback")
    (d / "releases" / "1.0.0" / "package" / "x.py").write_text("")
    for p in (d / "data" / "gallery.db", d / "data" / "crops" / "1.jpg", d / "logs" / "error.log"):
        os.chmod(p, 0o644)
    os.chmod(d / "releases" / "1.0.0" / "package" / "x.py", 0o666)
    os.chmod(d / "data", 0o777)
    lic = root.licenses
    lic.mkdir()
    (lic / "license.lic").write_text("{}")
    (lic / "vendor-1.pub").write_text("key")
    return root, d


def test_secure_root_repairs_an_old_deploy(tmp_path, as_root):
    root, d = old_deploy(tmp_path)
    filemodes.secure_root(root, SVC)
    for sub in ("data", "data/crops", "logs", "run", "run/1.0.0"):
        assert (owner(d / sub), mode(d / sub)) == (SVC, 0o750), sub
    for f in ("data/gallery.db", "data/crops/1.jpg", "logs/error.log"):
        assert (owner(d / f), mode(d / f)) == (SVC, 0o640), f
    assert mode(d / "releases" / "1.0.0" / "package" / "x.py") == 0o664  # no longer world-writable
    assert owner(d / "releases" / "1.0.0" / "package" / "x.py") == (0, 0)  # code stays root's
    assert (owner(root.licenses), mode(root.licenses)) == ((0, SVC[1]), 0o2750)
    for f in root.licenses.iterdir():
        assert (owner(f), mode(f)) == ((0, SVC[1]), 0o640)
    assert mode(d / "state.json") == 0o644


def test_without_a_service_user_only_modes_change(tmp_path, as_root):
    root, d = old_deploy(tmp_path)
    filemodes.secure_root(root, None)
    assert (owner(d / "data" / "gallery.db"), mode(d / "data" / "gallery.db")) == ((0, 0), 0o640)
    assert (owner(root.licenses / "license.lic"), mode(root.licenses / "license.lic")) == ((0, 0), 0o640)


def test_a_file_shared_read_only_with_the_service_stays_roots(tmp_path, as_root):
    """access.json is root:<service group> 0640 on purpose (access/store.py): the service reads it only."""
    root, d = old_deploy(tmp_path)
    access = d / "data" / "access.json"
    access.write_text("{}")
    os.chown(access, 0, SVC[1])
    os.chmod(access, 0o640)
    filemodes.secure_root(root, SVC)
    assert (owner(access), mode(access)) == ((0, SVC[1]), 0o640)


def test_a_link_planted_in_a_service_tree_never_turns_roots_chown_elsewhere(tmp_path, as_root):
    root, d = old_deploy(tmp_path)
    victim = tmp_path / "etc-shadow"
    victim.write_text("secret")
    os.chmod(victim, 0o600)
    (d / "logs" / "gunicorn.out").symlink_to(victim)
    (d / "data" / "dir-link").symlink_to(tmp_path, target_is_directory=True)
    filemodes.secure_root(root, SVC)
    assert (owner(victim), mode(victim)) == ((0, 0), 0o600)
    assert owner(tmp_path) == (0, 0)
    with pytest.raises(OSError):
        filemodes.open_console_log(d / "logs" / "gunicorn.out", SVC)  # O_NOFOLLOW
    assert victim.read_text() == "secret"


def test_console_log_is_the_service_users_and_private(tmp_path, as_root):
    log = tmp_path / "gunicorn.out"
    fd = filemodes.open_console_log(log, SVC)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
    assert (owner(log), mode(log)) == (SVC, 0o640)
    fd = filemodes.open_console_log(log, SVC)  # appends
    os.write(fd, b"y")
    os.close(fd)
    assert log.read_text() == "xy"


def test_shared_state_of_an_older_installer_is_taken_back(tmp_path, as_root):
    base = tmp_path / "var-lib-visionpack"
    for sub in ("instances", "state"):
        (base / sub).mkdir(parents=True)
        os.chmod(base / sub, 0o1777)
    (base / "instances" / "slot-0.lock").write_text("")
    os.chmod(base / "instances" / "slot-0.lock", 0o666)
    (base / "state" / "clock.mark").write_text("{}")
    os.chmod(base, 0o750)
    filemodes.prepare_shared_state(SVC, base=base)
    assert (owner(base), mode(base)) == ((0, 0), 0o755)
    for sub in ("instances", "state"):
        assert (owner(base / sub), mode(base / sub)) == (SVC, 0o3770)
    assert (owner(base / "instances" / "slot-0.lock"), mode(base / "instances" / "slot-0.lock")) == (SVC, 0o660)
    assert (owner(base / "state" / "clock.mark"), mode(base / "state" / "clock.mark")) == (SVC, 0o640)


def test_private_mode():
    assert filemodes.private_mode(0o644, False) == 0o640
    assert filemodes.private_mode(0o666, False) == 0o640
    assert filemodes.private_mode(0o600, False) == 0o600
    assert filemodes.private_mode(0o755, False) == 0o750
    assert filemodes.private_mode(0o1777, True) == 0o750
    assert filemodes.private_mode(0o500, True) == 0o700
