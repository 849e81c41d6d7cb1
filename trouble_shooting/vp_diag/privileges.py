"""Least privilege: who the services run as, and files others may read or write.

The policy is the installer's (package/visionpack/installer/filemodes.py, docs/operator-guide.md
"Service user and file modes"); this module only reads, with the stdlib, so it works when the
runtime is broken. Every finding names the command that repairs it: any root ``install.py``
start/restart/upgrade/rollback/lu (re)applies the modes.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

from . import procfs
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "privileges"
ORDER = 41  # after processes (which records whether a deploy runs)
SERVICE_USER = "visionpack"
SHARED = Path("/var/lib/visionpack")
MAX_SHOWN = 5


def uid_of(pid: int, base: Path = procfs.PROC) -> int | None:
    """The real uid of ``pid`` (``Uid:`` of /proc/<pid>/status), None if it is gone."""
    try:
        for line in (base / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def loose_files(top: Path, bits: int) -> list[tuple[Path, int]]:
    """(path, mode) of everything under ``top`` (not following links) with any of ``bits`` set."""
    out = []
    if not top.is_dir():
        return out
    for base, dirs, files in os.walk(top):
        for name in ([""] if base == str(top) else []) + dirs + files:  # each directory once
            p = Path(base) / name
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & bits:
                out.append((p, stat.S_IMODE(st.st_mode)))
    return out


def _shown(items: list[tuple[Path, int]]) -> list[str]:
    more = [f"... and {len(items) - MAX_SHOWN} more"] if len(items) > MAX_SHOWN else []
    return [f"{m:04o} {p}" for p, m in items[:MAX_SHOWN]] + more


def shared_state_check(ctx: Context, shared: Path = SHARED) -> Result:
    """/var/lib/visionpack: nothing world-writable, slot files nobody else can open."""
    bad = loose_files(shared, stat.S_IWOTH)
    bad += [(p, m) for p, m in loose_files(shared / "instances", stat.S_IROTH) if p.is_file() and (p, m) not in bad]
    repair = [ctx.install_cmd(r, "restart", "DEPLOY") for r in ctx.roots[:1]] or [
        "python3 package/Install/install.py restart DEPLOY"
    ]
    if bad:
        return Result(
            GROUP,
            "licensing-state",
            FAIL,
            f"{len(bad)} path(s) under {shared} are world-writable or slot files others can open: any "
            f"local user can hold a licensed instance slot and make every start refuse",
            repair + [f"chmod -R o-rwx {quote(shared / 'instances')} {quote(shared / 'state')}"],
            _shown(bad),
        )
    if not shared.is_dir():
        return Result(GROUP, "licensing-state", PASS, f"{shared} does not exist yet (made by the first root install)")
    return Result(GROUP, "licensing-state", PASS, f"nothing under {shared} is open to other users")


def user_check(ctx: Context, d: Deploy, base: Path = procfs.PROC) -> Result | None:
    """A running process deploy's master runs as the service user (or, non-root installs, its operator)."""
    if not ctx.deploy_fact(d, "running") or ctx.deploy_fact(d, "docker"):
        return None
    pid = procfs.read_pid(d.dir / "run" / "gunicorn.pid")
    uid = uid_of(pid, base) if pid else None
    kw = {"deploy": d.name, "root": str(d.root)}
    if uid is None:
        return None
    if uid == 0:
        return Result(
            deploy_group(d),
            "service-user",
            WARN,
            f"gunicorn master {pid} runs as root (started by an older installer): a flaw in the service "
            f"or a model library would own the machine",
            [ctx.install_cmd(d.root, "restart", d.name)],
            **kw,
        )
    return Result(deploy_group(d), "service-user", PASS, f"gunicorn master {pid} runs as {user_name(uid)}", **kw)


def modes_check(ctx: Context, d: Deploy) -> Result:
    """Gallery, crops, logs and license not readable by others; nothing world-writable in the deploy."""
    kw = {"deploy": d.name, "root": str(d.root)}
    bad = loose_files(d.dir / "data", stat.S_IRWXO) + loose_files(d.dir / "logs", stat.S_IRWXO)
    bad += [(p, m) for p, m in loose_files(d.dir, stat.S_IWOTH) if p not in {x for x, _ in bad}]
    lic = d.root / "licenses" / "license.lic"
    if lic.is_file() and os.stat(lic).st_mode & stat.S_IROTH:
        bad.append((lic, stat.S_IMODE(os.stat(lic).st_mode)))
    if bad:
        return Result(
            deploy_group(d),
            "file-modes",
            WARN,
            f"{len(bad)} path(s) other local users may read or write (gallery, logs with stack traces, license)",
            [
                ctx.install_cmd(d.root, "restart", d.name),
                f"chmod -R o-rwx {quote(d.dir / 'data')} {quote(d.dir / 'logs')}",
            ],
            _shown(bad),
            **kw,
        )
    return Result(deploy_group(d), "file-modes", PASS, "data, logs and license are closed to other users", **kw)


def checks(ctx: Context) -> Iterable[Result]:
    if ctx.deploys:
        yield shared_state_check(ctx)
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken"):
            continue
        found = user_check(ctx, d)
        if found is not None:
            yield found
        yield modes_check(ctx, d)
