"""installer/systemd.py and the systemd runtime: the unit text, the systemctl calls (a recording stub), the refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visionpack.errors import SystemdUnavailable
from visionpack.installer import cli, systemd
from visionpack.installer.context import Context
from visionpack.installer.installed import Installed
from visionpack.installer.layout import Root
from visionpack.installer.runtimes.kinds import runtime_for
from visionpack.installer.runtimes.systemd_unit import SystemdRuntime

# Appends its argv to $SYSTEMCTL_LOG as one JSON line; `is-active` answers $SYSTEMCTL_ACTIVE.
STUB = """#!{python}
import json, os, sys
with open(os.environ["SYSTEMCTL_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "is-active":
    state = os.environ.get("SYSTEMCTL_ACTIVE", "inactive")
    if "--quiet" not in sys.argv:
        print(state)
    sys.exit(0 if state == "active" else 3)
if sys.argv[1] == "show":
    print(0)
"""


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "systemctl"
    exe.write_text(STUB.format(python=sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "systemctl.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SYSTEMCTL_LOG", str(log))
    booted = tmp_path / "run-systemd-system"
    booted.mkdir()
    monkeypatch.setattr(systemd, "BOOTED", booted)
    monkeypatch.setattr(systemd, "UNIT_DIR", tmp_path / "units")
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_service_unit_text(tmp_path: Path) -> None:
    paths = Root(Path("/R")).deploy("demo-classify")
    text = systemd.service_text(paths, 30.0, "visionpack")
    lines = set(text.splitlines())
    for line in (
        "Type=exec",
        "User=visionpack",
        "Group=visionpack",
        "Requires=visionpack-demo-classify.socket",
        "WorkingDirectory=/R/demo-classify",
        "EnvironmentFile=/R/demo-classify/run/systemd.env",
        "Restart=on-failure",
        "KillMode=mixed",
        "TimeoutStopSec=45",
        f"LimitNOFILE={systemd.LIMIT_NOFILE}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ReadWritePaths=/R/demo-classify/data /R/demo-classify/logs /R/demo-classify/run -/var/lib/visionpack",
        "WantedBy=multi-user.target",
    ):
        assert line in lines, (line, text)
    start = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    # exec keeps the pid systemd set LISTEN_PID to; $$ reaches sh as one $.
    assert start.startswith('ExecStart=/bin/sh -c \'exec "$${VP_GUNICORN}" -c "$${VP_RELEASE}/start/gunicorn_conf.py"')
    assert "User=" not in systemd.service_text(paths, 30.0, None)


def test_socket_unit_text_and_env_file() -> None:
    paths = Root(Path("/R")).deploy("d")
    assert "ListenStream=127.0.0.1:18791\n" in systemd.socket_text(paths, "127.0.0.1", 18791)
    assert "ListenStream=[::]:80\n" in systemd.socket_text(paths, "::", 80)
    assert "WantedBy=sockets.target" in systemd.socket_text(paths, "0.0.0.0", 1)
    env = systemd.env_text(Path("/R/d/releases/2"), Path("/R/.runtime/k"), paths.run).splitlines()
    assert env == [
        "VISIONPACK_CONFIG=/R/d/releases/2/config.yml",
        "PYTHONPATH=/R/d/releases/2/package",
        "VP_RELEASE=/R/d/releases/2",
        "VP_GUNICORN=/R/.runtime/k/bin/gunicorn",
        "HOME=/R/d/run",
    ]


def test_exec_start_as_sh_runs_it(tmp_path: Path) -> None:
    """systemd turns $$ into $ before sh sees it; what sh then runs is gunicorn with our config."""
    start = next(x for x in systemd.service_text(Root(tmp_path).deploy("d"), 1, None).splitlines() if "ExecStart" in x)
    argv = start.removeprefix("ExecStart=/bin/sh -c '").removesuffix("'").replace("$$", "$")
    fake = tmp_path / "gunicorn"
    fake.write_text('#!/bin/sh\necho "$$ $*"\n')
    fake.chmod(0o755)
    env = {"VP_GUNICORN": str(fake), "VP_RELEASE": "/rel", "PATH": os.environ["PATH"]}
    out = subprocess.run(["/bin/sh", "-c", f"echo $$; {argv}"], env=env, capture_output=True, text=True, check=True)
    assert (
        out.stdout.splitlines()[1].split(" ", 1)[1] == "-c /rel/start/gunicorn_conf.py visionpack.api.app:create_app()"
    )


def test_write_units_enables_and_reloads_only_on_change(stub: Path, tmp_path: Path) -> None:
    paths = Root(tmp_path / "R").deploy("demo")
    systemd.write_units(paths, "127.0.0.1", 18791, 30.0, "visionpack")
    assert (systemd.UNIT_DIR / "visionpack-demo.service").read_text() == systemd.service_text(paths, 30.0, "visionpack")
    assert (systemd.UNIT_DIR / "visionpack-demo.socket").read_text() == systemd.socket_text(paths, "127.0.0.1", 18791)
    systemd.write_units(paths, "127.0.0.1", 18791, 30.0, "visionpack")
    enable = ["enable", "visionpack-demo.socket", "visionpack-demo.service"]
    assert calls(stub) == [["daemon-reload"], enable, enable]
    assert systemd.exists("demo")


def test_stop_and_remove_go_through_systemctl(stub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Root(tmp_path / "R")
    paths = root.deploy("demo")
    systemd.write_units(paths, "127.0.0.1", 18791, 30.0, None)
    stub.unlink()
    monkeypatch.setenv("SYSTEMCTL_ACTIVE", "active")
    runtime = runtime_for({"runtime_kind": "systemd"})
    assert isinstance(runtime, SystemdRuntime)
    inst = Installed(paths, {"release": "1.0.0", "runtime_kind": "systemd"}, "1.0.0")
    ctx = Context(root=root, source=None)  # type: ignore[arg-type]
    assert runtime.stop(ctx, inst) is True
    assert runtime.remove(ctx, inst) is True
    unit, sock = "visionpack-demo.service", "visionpack-demo.socket"
    assert calls(stub) == [
        ["is-active", "--quiet", unit],
        ["stop", unit, sock],
        ["is-active", "--quiet", unit],
        ["stop", unit, sock],
        ["disable", sock, unit],
        ["daemon-reload"],
        ["reset-failed", unit],
    ]
    assert not systemd.exists("demo") and not (systemd.UNIT_DIR / sock).exists()


def test_refused_without_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "BOOTED", tmp_path / "absent")
    with pytest.raises(SystemdUnavailable, match="PID 1 is not systemd") as err:
        SystemdRuntime().preflight(Context(root=Root(tmp_path), source=None))  # type: ignore[arg-type]
    assert err.value.exit_code == 25


def test_refused_without_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "BOOTED", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert systemd.refusal() == "systemd is running but systemctl is not on PATH"


def test_cli_install_systemd_refused_with_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where systemd is not PID 1, install --systemd stops before it writes anything."""
    monkeypatch.setattr(systemd, "BOOTED", tmp_path / "absent")
    argv = ["--root", str(tmp_path / "R"), "install", "demo-classify", "--systemd", "--port", "18792"]
    assert cli.main(argv, env={}) == 25
    out = capsys.readouterr()
    assert "systemd is not running on this machine" in out.out + out.err
    assert "systemd-unavailable" in out.out + out.err or "--systemd" in out.out + out.err
    assert not (tmp_path / "R" / "demo-classify").exists()


def test_systemd_flag_of_install_and_inall() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["install", "d", "--systemd"]).runtime == "systemd"
    assert parser.parse_args(["inall", "--systemd"]).runtime == "systemd"
    assert parser.parse_args(["install", "d", "--runtime", "systemd"]).runtime == "systemd"
