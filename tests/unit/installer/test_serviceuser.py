"""serviceuser.py: who the services run as, whether they can reach a path, creating the user (a
failing useradd, run for real: tests/integration/installer/test_serviceuser.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from visionpack.errors import EnvironmentCheckFailed
from visionpack.installer import serviceuser, venvs


def test_the_numbers_are_the_docker_images():
    from visionpack.installer.runtimes import docker_containers

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "image"))
    try:
        import image  # tools/image/image.py: the image's user
    finally:
        sys.path.pop(0)
    assert serviceuser.NAME == "visionpack"
    assert (
        serviceuser.UID == serviceuser.GID == docker_containers.UID == docker_containers.GID == image.UID == image.GID
    )


def test_not_root_means_the_invoking_user(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    assert serviceuser.lookup() is None
    assert serviceuser.ensure(say=pytest.fail) is None
    assert serviceuser.popen_kwargs(None) == {}


def test_ensure_creates_the_user_once_with_the_images_numbers_when_free(monkeypatch):
    calls, made = [], {}
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(serviceuser, "lookup", lambda: made.get("ids"))
    monkeypatch.setattr(serviceuser.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(serviceuser, "_free_uid", lambda uid: True)
    monkeypatch.setattr(serviceuser, "_free_gid", lambda gid: True)

    def fake_getgrnam(name):
        raise KeyError(name)

    monkeypatch.setattr(serviceuser.grp, "getgrnam", fake_getgrnam)

    def run(cmd):
        calls.append(cmd)
        if cmd[0] == "useradd":
            made["ids"] = (10001, 10001)

    monkeypatch.setattr(serviceuser, "_run", run)
    said = []
    assert serviceuser.ensure(say=said.append) == (10001, 10001)
    assert calls[0] == ["groupadd", "--system", "--gid", "10001", "visionpack"]
    useradd = calls[1]
    assert useradd[:4] == ["useradd", "--system", "--uid", "10001"] and "--no-create-home" in useradd
    assert useradd[useradd.index("--shell") + 1].endswith(("nologin", "false"))
    assert "created system user 'visionpack' (uid 10001" in said[0]
    assert serviceuser.ensure(say=pytest.fail) == (10001, 10001)  # once
    assert len(calls) == 2


def test_ensure_lets_the_system_pick_when_10001_is_taken(monkeypatch):
    calls, made = [], {}
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(serviceuser, "lookup", lambda: made.get("ids"))
    monkeypatch.setattr(serviceuser.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(serviceuser, "_free_uid", lambda uid: False)
    monkeypatch.setattr(serviceuser, "_free_gid", lambda gid: False)
    monkeypatch.setattr(serviceuser.grp, "getgrnam", lambda name: (_ for _ in ()).throw(KeyError(name)))

    def run(cmd):
        calls.append(cmd)
        made["ids"] = (997, 995)

    monkeypatch.setattr(serviceuser, "_run", run)
    assert serviceuser.ensure(say=lambda m: None) == (997, 995)
    assert "--gid" not in calls[0] and "--uid" not in calls[1]


def test_ensure_without_useradd_says_what_to_do(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(serviceuser, "lookup", lambda: None)
    monkeypatch.setattr(serviceuser.shutil, "which", lambda name: None)
    with pytest.raises(EnvironmentCheckFailed) as exc:
        serviceuser.ensure(say=lambda m: None)
    assert "useradd/groupadd not found" in exc.value.detail and "by hand" in exc.value.detail


def test_popen_kwargs_drop_supplementary_groups():
    assert serviceuser.popen_kwargs((10001, 10002)) == {"user": 10001, "group": 10002, "extra_groups": []}


def test_blocked_names_the_first_directory_the_user_cannot_enter(tmp_path):
    outer = tmp_path / "a"
    inner = outer / "b"
    inner.mkdir(parents=True)
    target = inner / "file"
    target.write_text("x")
    for d in (tmp_path, *tmp_path.parents):
        if not os.stat(d).st_mode & 0o001:
            pytest.fail(f"{d} must be traversable for this test (tests/conftest.py makes tmp_path so)")
    os.chmod(outer, 0o700)
    os.chmod(inner, 0o755)  # not left to the umask: other tests may have changed this process's
    os.chmod(target, 0o644)
    stranger = (54321, 54321)
    assert serviceuser.blocked(target, stranger) == outer
    assert serviceuser.blocked(target, None) == outer  # a user not created yet: other bits only
    os.chmod(outer, 0o711)
    assert serviceuser.blocked(target, stranger) is None
    os.chmod(target, 0o600)
    assert serviceuser.blocked(target, stranger) == target
    os.chown(target, 54321, 54321)
    assert serviceuser.blocked(target, stranger) is None  # its owner
    assert serviceuser.blocked(target, stranger, need=5) == target  # but not executable
    assert serviceuser.blocked(inner / "not-yet" / "x", stranger) is None  # will be created traversable
    os.chown(target, 0, 0)
    why = serviceuser.first_blocked([target], stranger)
    assert why is not None and f"chmod o+x {target}" in why and "0600" in why


def test_a_pyenv_python_under_roots_home_is_replaced_by_the_systems(monkeypatch, tmp_path):
    """Root's 0700 home holds pyenv's interpreters on many machines: the runtime must not use one."""
    monkeypatch.setattr(serviceuser, "is_root", lambda: True)
    monkeypatch.setattr(serviceuser, "lookup", lambda: (10001, 10001))
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "lib").mkdir()
    (home / "bin" / "python3").write_text("")
    os.chmod(home, 0o700)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    system = f"/usr/bin/python{version}"
    monkeypatch.setattr(
        venvs, "runnable_by_service", lambda py, ids: None if str(py) == system else f"cannot reach {py}"
    )
    monkeypatch.setattr(venvs, "_has_venv", lambda py: True)
    monkeypatch.setattr(venvs.os.path, "exists", lambda p: p == system)
    said = []
    assert venvs.service_python(str(home / "bin" / "python3"), say=said.append) == system
    assert "building the runtime with" in said[0]
    monkeypatch.setattr(venvs.os.path, "exists", lambda p: False)
    with pytest.raises(EnvironmentCheckFailed) as exc:
        venvs.service_python(str(home / "bin" / "python3"), say=said.append)
    assert f"Python {version} that every user can run" in exc.value.detail
