"""A deploy's systemd units (visionpack-<deploy>.socket + .service): their text, and the systemctl calls on them.

Why a socket unit: systemd (PID 1) holds the deploy's listening socket and hands it to each
gunicorn master it starts (LISTEN_FDS, which gunicorn honours). A restart of the service
between releases therefore closes nothing: connections that arrive while the next master
boots wait in the kernel's queue of a socket that never closes, so no request is refused,
and every master runs inside the unit (its cgroup, user and sandbox). docs/operator-guide.md
"systemd" says what this trades against the process runtime's handover.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from ..errors import StartFailed, StopFailed, SystemdUnavailable
from ..fsutil import atomic_write
from .layout import DeployPaths
from .serviceuser import NAME as SERVICE_USER

BOOTED = Path("/run/systemd/system")  # sd_booted(): exists only when systemd is PID 1
UNIT_DIR = Path("/etc/systemd/system")
ENV_FILE = "systemd.env"  # under the deploy's run/: which release the next master runs
LIMIT_NOFILE = 65536
GUNICORN_ARGS = '-c "$${VP_RELEASE}/start/gunicorn_conf.py" "visionpack.api.app:create_app()"'


def unit_name(deploy: str) -> str:
    return f"visionpack-{deploy}.service"


def socket_name(deploy: str) -> str:
    return f"visionpack-{deploy}.socket"


def refusal() -> str | None:
    """Why systemd units cannot be used here, or None when systemd runs this machine."""
    if not BOOTED.is_dir():
        return f"systemd is not running on this machine ({BOOTED} is missing: PID 1 is not systemd)"
    if shutil.which("systemctl") is None:
        return "systemd is running but systemctl is not on PATH"
    return None


def require() -> None:
    why = refusal()
    if why:
        raise SystemdUnavailable(why)


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def socket_text(paths: DeployPaths, host: str, port: int) -> str:
    return (
        "# Written by install.py: systemd holds this deploy's listening socket across restarts.\n"
        "[Unit]\n"
        f"Description=visionpack deploy {paths.name}: listening socket\n\n"
        "[Socket]\n"
        f"ListenStream={listen_address(host, port)}\n"
        "Backlog=2048\n"
        "NoDelay=true\n"
        "ReusePort=false\n\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )


def service_text(paths: DeployPaths, graceful: float, user: str | None = SERVICE_USER) -> str:
    """The service unit; ``user`` None runs it as root (a machine without the service user)."""
    who = f"User={user}\nGroup={user}\n" if user else ""
    return (
        "# Written by install.py; 'install.py remove' deletes it. The release it runs is in\n"
        f"# {paths.run / ENV_FILE} (upgrade and rollback rewrite it, then restart the service).\n"
        "[Unit]\n"
        f"Description=visionpack deploy {paths.name}\n"
        f"Requires={socket_name(paths.name)}\n"
        f"After=network.target {socket_name(paths.name)}\n\n"
        "[Service]\n"
        "Type=exec\n"
        f"{who}"
        f"WorkingDirectory={paths.dir}\n"
        f"EnvironmentFile={paths.run / ENV_FILE}\n"
        # exec keeps the pid systemd gave LISTEN_PID; $$ passes a literal $ to sh.
        f"ExecStart=/bin/sh -c 'exec \"$${{VP_GUNICORN}}\" {GUNICORN_ARGS}'\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        # TERM to the master only: it lets its workers finish what they accepted.
        "KillMode=mixed\n"
        f"TimeoutStopSec={int(graceful) + 15}\n"
        f"LimitNOFILE={LIMIT_NOFILE}\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=strict\n"
        "ProtectHome=read-only\n"
        "PrivateTmp=yes\n"
        f"ReadWritePaths={paths.data} {paths.logs} {paths.run} -/var/lib/visionpack\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def env_text(release: Path, venv: Path, run: Path) -> str:
    return (
        f"VISIONPACK_CONFIG={release / 'config.yml'}\n"
        f"PYTHONPATH={release / 'package'}\n"
        f"VP_RELEASE={release}\n"
        f"VP_GUNICORN={venv / 'bin' / 'gunicorn'}\n"
        # The service user has no home: caches go to the run directory, as procs.launch does.
        f"HOME={run}\n"
    )


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise StartFailed(f"systemctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def exists(deploy: str) -> bool:
    return (UNIT_DIR / unit_name(deploy)).exists()


def write_units(paths: DeployPaths, host: str, port: int, graceful: float, user: str | None) -> None:
    """Write both units (daemon-reload when they changed) and enable them: back after a reboot."""
    changed = False
    for name, text in (
        (socket_name(paths.name), socket_text(paths, host, port)),
        (unit_name(paths.name), service_text(paths, graceful, user)),
    ):
        path = UNIT_DIR / name
        if not path.exists() or path.read_text() != text:
            UNIT_DIR.mkdir(parents=True, exist_ok=True)
            atomic_write(path, text)
            changed = True
    if changed:
        systemctl("daemon-reload")
    systemctl("enable", socket_name(paths.name), unit_name(paths.name))


def select_release(paths: DeployPaths, release: Path, venv: Path) -> None:
    paths.run.mkdir(parents=True, exist_ok=True)
    atomic_write(paths.run / ENV_FILE, env_text(release, venv, paths.run))


def main_pid(deploy: str) -> int:
    out = systemctl("show", "-p", "MainPID", "--value", unit_name(deploy), check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def await_main_pid(deploy: str, timeout: float, old: int = 0) -> int:
    """The service's main pid once systemd has started it (and it differs from ``old``)."""
    deadline = time.monotonic() + timeout
    while True:
        pid = main_pid(deploy)
        if pid and pid != old:
            return pid
        if time.monotonic() >= deadline:
            state = systemctl("is-active", unit_name(deploy), check=False).stdout.strip()
            raise StartFailed(f"{unit_name(deploy)} has no main process after {timeout:.0f} s (state {state})")
        time.sleep(0.2)


def is_active(deploy: str) -> bool:
    return systemctl("is-active", "--quiet", unit_name(deploy), check=False).returncode == 0


def stop(deploy: str) -> bool:
    """Stop the service and close its socket; whether the service was running."""
    was = is_active(deploy)
    proc = systemctl("stop", unit_name(deploy), socket_name(deploy), check=False)
    if proc.returncode != 0:
        raise StopFailed(f"systemctl stop {unit_name(deploy)} failed: {proc.stderr.strip()}")
    return was


def remove(deploy: str) -> None:
    """Disable and delete both units."""
    systemctl("disable", socket_name(deploy), unit_name(deploy), check=False)
    for name in (unit_name(deploy), socket_name(deploy)):
        (UNIT_DIR / name).unlink(missing_ok=True)
    systemctl("daemon-reload", check=False)
    systemctl("reset-failed", unit_name(deploy), check=False)
