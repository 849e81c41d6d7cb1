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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import CONFIG_ENV, SLOT_FD_ENV
from ..errors import StartFailed, StopFailed
from . import filemodes, serviceuser, settings
from .journal import checkpoint
from .layout import DeployPaths
from .venvs import tail

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


def proc_info(pid: int, proc: Path = PROC) -> ProcInfo | None:
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


def is_ours(info: ProcInfo | None, paths: DeployPaths) -> bool:
    """True if ``info`` is a live gunicorn of this deploy (by proc title or by config path)."""
    if info is None or not info.alive:
        return False
    if f"[{paths.proc_name}]" in info.cmdline:  # title set by gunicorn when setproctitle is installed
        return True
    return "gunicorn" in info.cmdline and f"{paths.dir}/releases/" in info.cmdline


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def release_of(pid: int, paths: DeployPaths, proc: Path = PROC) -> str | None:
    """Which release a master of this deploy runs: from its -c path, else its VISIONPACK_CONFIG."""
    info = proc_info(pid, proc)
    marker = f"{paths.dir}/releases/"
    for text in ([info.cmdline] if info else []) + [_environ_config(pid, proc)]:
        if marker in text:
            rest = text.split(marker, 1)[1]
            version = rest.split("/", 1)[0]
            if version and "/" in rest:
                return version
    return None


def _environ_config(pid: int, proc: Path) -> str:
    try:
        env = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return ""
    for item in env.split(b"\0"):
        if item.startswith(b"VISIONPACK_CONFIG="):
            return item.split(b"=", 1)[1].decode("utf-8", "replace")
    return ""


def masters(paths: DeployPaths, proc: Path = PROC) -> dict[int, str | None]:
    """Every running gunicorn master of this deploy -> its release (two during an upgrade)."""
    ours = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            info = proc_info(int(entry.name), proc)
            if info is not None and is_ours(info, paths):
                ours[info.pid] = info
    # Workers share the master's command line; a master is one whose parent is not ours.
    return {pid: release_of(pid, paths, proc) for pid in sorted(ours) if ours[pid].ppid not in ours}


def master(paths: DeployPaths, proc: Path = PROC, version: str | None = None) -> int | None:
    """Pid of this deploy's serving master (or of ``version``'s master), or None.

    The pid file is the fast path; if it is missing or stale, /proc is searched, so a deleted
    pid file never hides a running service (which would then block its own port).
    """
    pidfile = paths.release_pidfile(version) if version else paths.pidfile
    pid = read_pid(pidfile)
    if (
        pid is not None
        and is_ours(proc_info(pid, proc), paths)
        and (version is None or release_of(pid, paths, proc) in (version, None))
    ):
        return pid
    found = masters(paths, proc)
    if version is not None:
        found = {p: v for p, v in found.items() if v == version}
    return min(found) if found else None


def point_pidfile(paths: DeployPaths, version: str) -> None:
    """run/gunicorn.pid -> <version>/gunicorn.pid, switched atomically with the traffic."""
    from ..fsutil import atomic_symlink

    paths.run.mkdir(parents=True, exist_ok=True)
    if paths.pidfile.exists() and not paths.pidfile.is_symlink():
        paths.pidfile.unlink()  # a regular file from a master of the old layout
    atomic_symlink(f"{version}/gunicorn.pid", paths.pidfile)


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


def get_ready(
    host: str, port: int, timeout: float = 2.0, headers: Mapping[str, str] | None = None
) -> tuple[int | None, dict[str, Any] | None]:
    """(HTTP status, JSON body) of GET /ready, or (None, None) if nothing answers.

    Without ops rights (access/: a key, or loopback under the default policy) the body is only
    ``{"ready": ...}``; callers that need the detail pass access.probe's ``headers``."""
    h = probe_host(host)
    url = f"http://[{h}]:{port}/ready" if ":" in h else f"http://{h}:{port}/ready"
    # No proxy: an operator's http_proxy must not swallow a loopback health probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as resp:
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
    env[CONFIG_ENV] = str(release / "config.yml")
    env["PYTHONPATH"] = str(release / "package")
    return env


def command(venv: Path, release: Path) -> list[str]:
    # Never --preload: Paddle predictors must be created in each worker after fork.
    return [str(venv / "bin" / "gunicorn"), "-c", str(release / "start" / "gunicorn_conf.py"), APP]


# Run by the runtime's python between fork and gunicorn: put the inherited listeners at fds 3..
# and set LISTEN_PID to this very pid (kept by exec), as systemd's sd_listen_fds() wants.
_LAUNCH = (
    "import fcntl, os, sys\n"
    "fds = [int(x) for x in sys.argv[1].split(',') if x]\n"
    "slot = int(sys.argv[2])\n"
    "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds + ([slot] if slot >= 0 else [])]\n"
    "for fd in set(fds + ([slot] if slot >= 0 else [])):\n"
    "    os.close(fd)\n"
    "for i, fd in enumerate(high):\n"
    "    os.dup2(fd, 3 + i)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_FDS'] = str(len(fds))\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "if slot >= 0:\n"
    f"    os.environ[{SLOT_FD_ENV!r}] = str(3 + len(fds))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def launch(
    paths: DeployPaths,
    venv: Path,
    release: Path,
    *,
    listeners: Sequence[int] = (),
    slot_fd: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Spawn a release's gunicorn master detached (own session); it outlives the installer.

    Without ``listeners`` gunicorn binds host:port itself; with them it serves those inherited
    sockets (the handover of an upgrade) and binds nothing.
    """
    # As root the service runs as the service user (serviceuser.py): its directories are made
    # its own first (also repairing a root an older installer wrote), and everything it must
    # read is checked reachable, so a 0700 ancestor is named instead of a bare exec failure.
    ids = serviceuser.ensure(say=lambda _msg: None)  # the command already said it created the user
    filemodes.service_dirs(paths, ids, versions=(release.name,))
    filemodes.prepare_shared_state(ids)
    if ids is not None:
        base_python = Path(os.path.realpath(venv / "bin" / "python"))
        problem = serviceuser.first_blocked(
            [
                release / "start" / "gunicorn_conf.py",
                release / "package",
                venv / "bin" / "gunicorn",
                base_python,
                base_python.parent.parent / "lib",
            ],
            ids,
        )
        if problem:
            raise StartFailed(problem)
    pidfile = paths.release_pidfile(release.name)
    if pidfile.exists() and master(paths, version=release.name) is None:
        pidfile.unlink()  # stale: gunicorn refuses to start over a pid file naming a live process
    full_env = service_env(release, env or settings.environ())
    if ids is not None:
        # The service user has no home (useradd --no-create-home); libraries that keep a cache
        # under ~ get the deploy's run directory instead of root's home.
        full_env.update(HOME=str(paths.run), USER=serviceuser.NAME, LOGNAME=serviceuser.NAME)
    full_env.update(extra_env or {})
    cmd = command(venv, release)
    keep: list[int] = []
    if listeners or slot_fd is not None:
        keep = list(listeners) + ([slot_fd] if slot_fd is not None else [])
        cmd = [
            str(venv / "bin" / "python"),
            "-c",
            _LAUNCH,
            ",".join(map(str, listeners)),
            str(-1 if slot_fd is None else slot_fd),
            *cmd,
        ]
    out = filemodes.open_console_log(paths.console_log, ids)
    try:
        # Master and workers alike run as the service user: it is dropped before exec, and the
        # listeners and license slot passed on (handover) are descriptors, which survive it.
        return subprocess.Popen(
            cmd,
            cwd=str(paths.dir),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=keep,
            **serviceuser.popen_kwargs(ids),
        )
    except PermissionError as exc:
        raise StartFailed(f"cannot start {cmd[0]} as {serviceuser.name_of(ids)}: {exc}") from None
    finally:
        os.close(out)


def _poll_ready(
    paths: DeployPaths, host: str, port: int, timeout: float, exited: Callable[[], str | None]
) -> tuple[int | None, dict[str, Any] | None] | None:
    """Poll GET /ready until 200 (None) or ``timeout`` (the last answer); StartFailed if the master exits."""
    deadline = time.monotonic() + timeout
    while True:
        gone = exited()
        if gone is not None:
            raise StartFailed(f"gunicorn {gone} before it was ready\n{logs_tail(paths)}")
        status, body = get_ready(host, port, timeout=2.0)
        if status == 200:
            return None
        if time.monotonic() >= deadline:
            return status, body
        time.sleep(0.3)


def wait_ready(paths: DeployPaths, proc: subprocess.Popen[bytes], host: str, port: int, timeout: float) -> None:
    """Wait for GET /ready == 200; on exit or timeout kill what was started and raise StartFailed."""
    last = _poll_ready(
        paths, host, port, timeout, lambda: None if proc.poll() is None else f"exited with status {proc.returncode}"
    )
    if last is None:
        return
    kill_group(proc.pid)
    proc.wait()
    raise StartFailed(
        f"not ready after {timeout:.0f} s (last /ready answer: {last[0]} {last[1]}); stopped it\n{logs_tail(paths)}"
    )


def await_running(paths: DeployPaths, pid: int, host: str, port: int, timeout: float) -> None:
    """Wait for GET /ready == 200 from a master this command did not start (an interrupted
    command's, still booting); StartFailed if it exits or stays unready. Not killed here: the
    operator decides (stop, then start)."""
    last = _poll_ready(paths, host, port, timeout, lambda: None if _alive([pid]) else f"(pid {pid}) exited")
    if last is not None:
        raise StartFailed(
            f"pid {pid} is running but not ready after {timeout:.0f} s (last /ready answer: "
            f"{last[0]} {last[1]}); stop it and start again\n{logs_tail(paths)}"
        )


def start(
    paths: DeployPaths,
    venv: Path,
    release: Path,
    host: str,
    port: int,
    *,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Spawn gunicorn detached and wait for /ready == 200; returns the master pid."""
    proc = launch(paths, venv, release, env=env)
    checkpoint("start", "spawned")
    say(f"started gunicorn (pid {proc.pid}); waiting up to {timeout:.0f} s for http://{probe_host(host)}:{port}/ready")
    wait_ready(paths, proc, host, port, timeout)
    point_pidfile(paths, release.name)
    return proc.pid


def logs_tail(paths: DeployPaths) -> str:
    parts = []
    for log in (paths.error_log, paths.console_log):
        if log.exists():
            parts.append(f"--- last lines of {log} ---\n{tail(log)}")
    return "\n".join(parts) or f"(no log in {paths.logs})"


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pids: list[int], proc: Path = PROC) -> list[int]:
    return [p for p in pids if (i := proc_info(p, proc)) is not None and i.alive]


def stop(paths: DeployPaths, graceful: float, *, say: Callable[[str], None] = print, pid: int | None = None) -> bool:
    """Stop master ``pid``, or every master of the deploy: TERM, wait ``graceful`` s, then KILL.

    False if nothing was running. TERM is graceful: a master closes its copy of the listening
    socket and its workers finish what they accepted, so a socket shared with a newer release's
    master (handover) keeps its queue and no connection is reset.
    """
    targets = [pid] if pid else list(masters(paths))
    targets = [p for p in targets if is_ours(proc_info(p), paths)]
    if not targets:
        if paths.pidfile.is_symlink() or paths.pidfile.exists():
            if pidfile_is_stale(paths):
                say(f"removing stale pid file {paths.pidfile}")
            paths.pidfile.unlink()
        return False
    pids: list[int] = []
    for master_pid in targets:
        workers = children(master_pid)
        pids += [master_pid] + workers
        say(f"stopping gunicorn (master {master_pid}, workers {' '.join(map(str, workers)) or 'none'})")
        os.kill(master_pid, signal.SIGTERM)
    if not _wait_gone(pids, graceful + 5):
        say(f"still running after {graceful + 5:.0f} s; sending SIGKILL")
        for p in _alive(pids):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not _wait_gone(pids, 10):
            raise StopFailed(f"pids {' '.join(map(str, _alive(pids)))} survived SIGKILL")
    for master_pid in targets:
        _drop_pidfiles(paths, master_pid)
    return True


def _wait_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _drop_pidfiles(paths: DeployPaths, pid: int) -> None:
    # gunicorn removes its own pid file on a clean exit; after SIGKILL it cannot.
    for pidfile in list(paths.run.glob("*/gunicorn.pid")) + [paths.pidfile]:
        if read_pid(pidfile) == pid:
            try:
                pidfile.unlink()
            except FileNotFoundError:
                pass
    if paths.pidfile.is_symlink() and not paths.pidfile.exists():
        paths.pidfile.unlink()  # it named the master that just stopped
