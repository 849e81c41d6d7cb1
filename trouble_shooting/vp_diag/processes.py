"""Processes: the master in run/gunicorn.pid is alive and really is this deploy's gunicorn."""

from __future__ import annotations

from collections.abc import Iterable

from . import procfs
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "processes"
ORDER = 40


def find_master(d: Deploy, procs: list) -> tuple:
    """(master pid or None, how it was found, pid-file pid, what that pid really is)."""
    pidfile = d.dir / "run" / "gunicorn.pid"
    pid = procfs.read_pid(pidfile)
    info = procfs.proc(pid) if pid else None
    if pid and procfs.is_ours(info, d.dir, d.name):
        return pid, "pidfile", pid, info
    ours = {p.pid: p for p in procs if procfs.is_ours(p, d.dir, d.name)}
    masters = sorted(p for p, i in ours.items() if i.ppid not in ours)
    return (masters[0] if masters else None), "scan", pid, info


def process_check(ctx: Context, d: Deploy, procs: list | None = None) -> list:
    g = deploy_group(d)
    procs = procfs.all_procs() if procs is None else procs
    master, how, file_pid, file_info = find_master(d, procs)
    pidfile = d.dir / "run" / "gunicorn.pid"
    out = []
    kw = dict(deploy=d.name, root=str(d.root))
    if master is None:
        ctx.set_deploy_fact(d, "running", False)
        stale = ""
        if file_pid:
            stale = f"; {pidfile} names pid {file_pid}, which is " + (
                f"another program ({file_info.cmdline[:80]})" if file_info and file_info.alive else "gone"
            )
        if d.desired == "running":
            out.append(
                Result(
                    g,
                    "process",
                    FAIL,
                    f"gunicorn is not running but should be (want up){stale}",
                    [
                        ctx.install_cmd(d.root, "start", d.name),
                        f"tail -n 50 {quote(d.dir / 'logs' / 'error.log')}  # if it does not stay up",
                    ],
                    data={"desired": d.desired, "pidfile_pid": file_pid},
                    **kw,
                )
            )
        else:
            out.append(
                Result(
                    g,
                    "process",
                    PASS,
                    f"stopped, as recorded (desired: stopped){stale}",
                    data={"desired": d.desired},
                    **kw,
                )
            )
        return out
    workers = procfs.children(master, procs)
    ctx.set_deploy_fact(d, "running", True)
    ctx.set_deploy_fact(d, "master", master)
    ctx.set_deploy_fact(d, "workers", workers)
    out.append(
        Result(
            g,
            "process",
            PASS,
            f"gunicorn master pid {master}, workers {' '.join(map(str, workers)) or 'none'}",
            data={"master": master, "workers": workers},
            **kw,
        )
    )
    # A container's gunicorn writes its own namespace's pid: the host sees another number there.
    if how == "scan" and not ctx.deploy_fact(d, "docker"):
        what = (
            "is missing"
            if file_pid is None
            else (
                f"names pid {file_pid}, which is "
                + (f"another program ({file_info.cmdline[:80]})" if file_info and file_info.alive else "gone")
            )
        )
        out.append(
            Result(
                g,
                "pidfile",
                WARN,
                f"{pidfile} {what}; the master was found in /proc",
                [f"echo {master} > {quote(pidfile)}"],
                **kw,
            )
        )
    want = (d.state or {}).get("workers")
    if isinstance(want, int) and len(workers) < want:
        out.append(
            Result(
                g,
                "workers",
                WARN,
                f"{len(workers)} of {want} workers alive (gunicorn is replacing "
                "crashed ones, or they are being OOM-killed)",
                [f"grep -E 'WORKER TIMEOUT|SIGKILL|Booting worker' {quote(d.dir / 'logs' / 'error.log')} | tail"],
                **kw,
            )
        )
    return out


def checks(ctx: Context) -> Iterable[Result]:
    procs = procfs.all_procs()
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken"):
            continue
        yield from process_check(ctx, d, procs)
