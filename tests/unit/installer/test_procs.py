"""A pid file is trusted only when the process really is this deploy's gunicorn (on a fake /proc),
the service's environment and command line. With real processes and a real /ready:
tests/integration/installer/test_procs.py."""

from __future__ import annotations

import pytest

from visionpack.installer import procs
from visionpack.installer.layout import Root


def fake_proc(tmp_path, pid, *, ppid=1, state="S", cmdline=b"", comm="python3"):
    d = tmp_path / "proc" / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1 4194560 0\n")
    (d / "cmdline").write_bytes(cmdline)
    return tmp_path / "proc"


@pytest.fixture
def paths(tmp_path):
    p = Root(tmp_path / "root").deploy("demo")
    p.run.mkdir(parents=True)
    return p


def ours(paths):
    conf = f"{paths.dir}/releases/1.0.0/start/gunicorn_conf.py"
    return (
        f"/r/.runtime/k/bin/python\0/r/.runtime/k/bin/gunicorn\0-c\0{conf}\0visionpack.api.app:create_app()\0".encode()
    )


def test_proc_info_parses_comm_with_spaces_and_parens(tmp_path):
    proc = fake_proc(tmp_path, 42, ppid=7, comm="gunicorn: master) (x", cmdline=b"a\0b\0")
    info = procs.proc_info(42, proc)
    assert (info.pid, info.ppid, info.state, info.cmdline) == (42, 7, "S", "a b")


def test_master_accepts_our_gunicorn_by_config_path(tmp_path, paths):
    proc = fake_proc(tmp_path, 42, cmdline=ours(paths))
    paths.pidfile.write_text("42\n")
    assert procs.master(paths, proc) == 42


def test_master_accepts_our_gunicorn_by_proc_title(tmp_path, paths):
    proc = fake_proc(tmp_path, 42, cmdline=b"gunicorn: master [visionpack:demo]")
    paths.pidfile.write_text("42")
    assert procs.master(paths, proc) == 42


@pytest.mark.parametrize(
    "cmdline",
    [
        b"/usr/sbin/sshd\0-D\0",  # pid reused by a stranger
        b"gunicorn: master [visionpack:demo-2]",  # another deploy's title
        b"gunicorn\0-c\0/other/root/demo/releases/1/start/gunicorn_conf.py\0",  # another root
    ],
)
def test_stale_or_foreign_pid_is_not_ours(tmp_path, paths, cmdline):
    proc = fake_proc(tmp_path, 42, cmdline=cmdline)
    paths.pidfile.write_text("42")
    assert procs.master(paths, proc) is None
    assert procs.pidfile_is_stale(paths, proc)


def test_lost_pid_file_master_is_found_in_proc(tmp_path, paths):
    proc = fake_proc(tmp_path, 42, ppid=1, cmdline=ours(paths))
    fake_proc(tmp_path, 43, ppid=42, cmdline=ours(paths))  # worker: same command line
    fake_proc(tmp_path, 50, ppid=1, cmdline=b"sleep 60")
    assert not paths.pidfile.exists()
    assert procs.master(paths, proc) == 42 and not procs.pidfile_is_stale(paths, proc)
    paths.pidfile.write_text("50")  # stale and foreign
    assert procs.master(paths, proc) == 42 and procs.pidfile_is_stale(paths, proc)


def test_zombie_master_is_not_running(tmp_path, paths):
    proc = fake_proc(tmp_path, 42, state="Z", cmdline=ours(paths))
    paths.pidfile.write_text("42")
    assert procs.master(paths, proc) is None


@pytest.mark.parametrize("content", ["", "abc", "-5", "0"])
def test_garbage_pid_file(paths, content):
    paths.pidfile.write_text(content)
    assert procs.read_pid(paths.pidfile) is None and procs.master(paths) is None


def test_children_lists_live_workers_only(tmp_path, paths):
    proc = fake_proc(tmp_path, 42, cmdline=ours(paths))
    fake_proc(tmp_path, 43, ppid=42)
    fake_proc(tmp_path, 44, ppid=42, state="Z")
    fake_proc(tmp_path, 45, ppid=1)
    assert procs.children(42, proc) == [43]


def test_service_env_drops_stray_overrides(tmp_path):
    env = procs.service_env(tmp_path / "rel", {"VISIONPACK_PORT": "1", "PATH": "/bin", "PYTHONHOME": "/x"})
    assert env["VISIONPACK_CONFIG"] == str(tmp_path / "rel" / "config.yml")
    assert env["PYTHONPATH"] == str(tmp_path / "rel" / "package")
    assert "VISIONPACK_PORT" not in env and "PYTHONHOME" not in env and env["PATH"] == "/bin"


def test_command_never_preloads(tmp_path):
    cmd = procs.command(tmp_path / "venv", tmp_path / "rel")
    assert cmd == [
        str(tmp_path / "venv/bin/gunicorn"),
        "-c",
        str(tmp_path / "rel/start/gunicorn_conf.py"),
        "visionpack.api.app:create_app()",
    ]
    assert "--preload" not in cmd


@pytest.mark.parametrize("host, probe", [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("192.0.2.5", "192.0.2.5")])
def test_probe_host(host, probe):
    assert procs.probe_host(host) == probe


def test_get_ready_with_nothing_listening():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert procs.get_ready("127.0.0.1", port, timeout=1) == (None, None)
