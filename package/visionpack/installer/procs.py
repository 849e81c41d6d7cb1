"""gunicorn processes of one deploy: find, start detached, wait for /ready, stop.

The installer runs on the system python, which may not have psutil, so processes are read
from /proc directly (this product is Linux-only). A pid from a pid file is trusted only if
that process's command line names this deploy, so a stale pid file that now belongs to
another program never gets a signal from us.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from ..errors import StartFailed, StopFailed
from .layout import DeployPaths
from .runtime_env import tail

PROC = Path("/proc")
APP = "visionpack.api.app:create_app()"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    cmdline: str

    @property
    def alive(self) -> bool:
        # Z: exited but not reaped (our parent may be a container init that never reaps); X: dead.
        return self.state not in ("Z", "X")


def proc_info(pid: int, proc: Path = PROC) -> Optional[ProcInfo]:
    try:
        stat = (proc / str(pid) / "stat").read_text()
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    # comm (field 2) may hold spaces and parentheses; the fields after the last ')' are fixed.
    rest = stat.rsplit(")", 1)[-1].split()
    if len(rest) < 2:
        return None
    return ProcInfo(pid, int(rest[1]), rest[0], raw.replace(b"\0", b" ").decode("utf-8", "replace").strip())


def is_ours(info: Optional[ProcInfo], paths: DeployPaths) -> bool:
    """True if ``info`` is a live gunicorn of this deploy (by proc title or by config path)."""
    if info is None or not info.alive:
        return False
    if f"[{paths.proc_name}]" in info.cmdline:  # title set by gunicorn when setproctitle is installed
        return True
    return "gunicorn" in info.cmdline and f"{paths.dir}/releases/" in info.cmdline


def read_pid(pidfile: Path) -> Optional[int]:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def master(paths: DeployPaths, proc: Path = PROC) -> Optional[int]:
    """Pid of this deploy's running gunicorn master, or None.

    The pid file is the fast path; if it is missing or stale, /proc is searched, so a deleted
    pid file never hides a running service (which would then block its own port).
    """
    pid = read_pid(paths.pidfile)
    if pid is not None and is_ours(proc_info(pid, proc), paths):
        return pid
    return _scan_master(paths, proc)


def _scan_master(paths: DeployPaths, proc: Path) -> Optional[int]:
    ours = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name), proc)
            if is_ours(info, paths):
                ours[info.pid] = info
    # Workers share the master's command line; the master is the one whose parent is not ours.
    masters = sorted(pid for pid, info in ours.items() if info.ppid not in ours)
    return masters[0] if masters else None


def pidfile_is_stale(paths: DeployPaths, proc: Path = PROC) -> bool:
    if not paths.pidfile.exists():
        return False
    pid = read_pid(paths.pidfile)
    return pid is None or not is_ours(proc_info(pid, proc), paths)


def children(pid: int, proc: Path = PROC) -> list[int]:
    out = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name), proc)
            if info is not None and info.ppid == pid and info.alive:
                out.append(info.pid)
    return sorted(out)


def probe_host(host: str) -> str:
    """Where a local client reaches a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def get_ready(host: str, port: int, timeout: float = 2.0) -> tuple[Optional[int], Optional[dict]]:
    """(HTTP status, JSON body) of GET /ready, or (None, None) if nothing answers."""
    h = probe_host(host)
    url = f"http://[{h}]:{port}/ready" if ":" in h else f"http://{h}:{port}/ready"
    # No proxy: an operator's http_proxy must not swallow a loopback health probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (OSError, ValueError):
        return None, None
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    return status, doc if isinstance(doc, dict) else None


def service_env(release: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment of the service: config.yml is the whole truth, so stray VISIONPACK_* go."""
    env = {k: v for k, v in base.items() if not k.startswith("VISIONPACK_")}
    for name in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["VISIONPACK_CONFIG"] = str(release / "config.yml")
    env["PYTHONPATH"] = str(release / "package")
    return env


def command(venv: Path, release: Path) -> list[str]:
    # Never --preload: Paddle predictors must be created in each worker after fork.
    return [str(venv / "bin" / "gunicorn"), "-c", str(release / "start" / "gunicorn_conf.py"), APP]


def start(paths: DeployPaths, venv: Path, release: Path, host: str, port: int, *, timeout: float = 120.0,
          env: Optional[Mapping[str, str]] = None, say: Callable[[str], None] = print) -> int:
    """Spawn gunicorn detached and wait for /ready == 200; returns the master pid."""
    for d in (paths.logs, paths.run, paths.data):
        d.mkdir(parents=True, exist_ok=True)
    if paths.pidfile.exists() and master(paths) is None:
        paths.pidfile.unlink()  # stale: gunicorn refuses to start over a pid file naming a live process
    out = open(paths.console_log, "ab")
    try:
        proc = subprocess.Popen(command(venv, release), cwd=str(paths.dir), env=service_env(release, env or os.environ),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    finally:
        out.close()
    say(f"started gunicorn (pid {proc.pid}); waiting up to {timeout:.0f} s for http://{probe_host(host)}:{port}/ready")
    deadline = time.monotonic() + timeout
    last = None
    while True:
        code = proc.poll()
        if code is not None:
            raise StartFailed(f"gunicorn exited with status {code} before it was ready\n{_logs_tail(paths)}")
        status, body = get_ready(host, port, timeout=2.0)
        if status == 200:
            return proc.pid
        last = (status, body)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    _kill_group(proc.pid)
    proc.wait()
    raise StartFailed(f"not ready after {timeout:.0f} s (last /ready answer: {last[0]} {last[1]}); stopped it\n{_logs_tail(paths)}")


def _logs_tail(paths: DeployPaths) -> str:
    parts = []
    for log in (paths.error_log, paths.console_log):
        if log.exists():
            parts.append(f"--- last lines of {log} ---\n{tail(log)}")
    return "\n".join(parts) or f"(no log in {paths.logs})"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pids: list[int], proc: Path = PROC) -> list[int]:
    return [p for p in pids if (i := proc_info(p, proc)) is not None and i.alive]


def stop(paths: DeployPaths, graceful: float, *, say: Callable[[str], None] = print) -> bool:
    """Stop the deploy's gunicorn: TERM, wait ``graceful`` s, then KILL. False if it was not running."""
    pid = master(paths)
    if pid is None:
        if paths.pidfile.exists():
            say(f"removing stale pid file {paths.pidfile}")
            paths.pidfile.unlink()
        return False
    pids = [pid] + children(pid)
    say(f"stopping gunicorn (master {pid}, workers {' '.join(map(str, pids[1:])) or 'none'})")
    os.kill(pid, signal.SIGTERM)
    if _wait_gone(pids, graceful + 5):
        _drop_pidfile(paths, pid)
        return True
    say(f"still running after {graceful + 5:.0f} s; sending SIGKILL")
    for p in _alive(pids):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if not _wait_gone(pids, 10):
        raise StopFailed(f"pids {' '.join(map(str, _alive(pids)))} survived SIGKILL")
    _drop_pidfile(paths, pid)
    return True


def _wait_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _drop_pidfile(paths: DeployPaths, pid: int) -> None:
    # gunicorn removes its own pid file on a clean exit; after SIGKILL it cannot.
    if read_pid(paths.pidfile) == pid or pidfile_is_stale(paths):
        try:
            paths.pidfile.unlink()
        except FileNotFoundError:
            pass
