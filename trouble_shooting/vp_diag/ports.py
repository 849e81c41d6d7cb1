"""Ports: the deploy's port is listening, on the configured address, and owned by our gunicorn.

Listening sockets come from /proc/net/tcp{,6}; their owners from the socket inodes in
/proc/<pid>/fd, so "something answers on 8701" is never mistaken for "our service runs".
"""

from __future__ import annotations

from collections.abc import Iterable

from . import procfs
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group

GROUP = "ports"
ORDER = 50
WILDCARDS = ("0.0.0.0", "::")


def _describe(pid: int) -> str:
    p = procfs.proc(pid)
    return f"pid {pid} ({p.cmdline[:100]})" if p else f"pid {pid}"


def covers(listen_addr: str, host: str) -> bool:
    """Does a socket bound to ``listen_addr`` accept connections meant for ``host``?"""
    if listen_addr == host:
        return True
    if listen_addr == "::":  # dual-stack wildcard also takes IPv4 unless IPV6_V6ONLY
        return True
    return listen_addr == "0.0.0.0" and ":" not in host


def port_check(ctx: Context, d: Deploy, listeners: list[procfs.Listener] | None = None) -> Result:
    g = deploy_group(d)
    kw = dict(deploy=d.name, root=str(d.root))
    port = d.port
    if not port:
        return Result(g, "port", FAIL, "state.json records no port", [ctx.install_cmd(d.root, "status", d.name)], **kw)
    listeners = procfs.listeners() if listeners is None else listeners
    mine = [sock for sock in listeners if sock.port == port]
    owners = procfs.socket_owners({sock.inode for sock in mine})
    ours = set()
    if ctx.deploy_fact(d, "running"):
        ours = {ctx.deploy_fact(d, "master")} | set(ctx.deploy_fact(d, "workers") or [])
    ss = f"ss -ltnp 'sport = :{port}'"
    held_by_us = [sock for sock in mine if set(owners.get(sock.inode, [])) & ours]
    foreign = [sock for sock in mine if owners.get(sock.inode) and not set(owners[sock.inode]) & ours]
    unknown = [sock for sock in mine if not owners.get(sock.inode)]
    data = {
        "port": port,
        "host": d.host,
        "listeners": [{"address": sock.address, "pids": owners.get(sock.inode, [])} for sock in mine],
    }
    if foreign:
        other = sorted({p for sock in foreign for p in owners[sock.inode]})
        who = ", ".join(_describe(p) for p in other[:3])
        fix = [ss, f"kill {' '.join(map(str, other[:3]))}  # if that program should not be there"]
        if ctx.deploy_fact(d, "running"):
            msg = f"port {port} is also held by {who}, not this deploy's gunicorn"
        else:
            msg = f"port {port} is taken by {who}: this deploy cannot start"
            fix.append(ctx.install_cmd(d.root, "start", d.name))
        return Result(g, "port", FAIL, msg, fix, data=data, **kw)
    if not ctx.deploy_fact(d, "running"):
        if unknown:
            return Result(
                g,
                "port",
                WARN,
                f"port {port} is listening, owner unknown (no permission to read its "
                "process); this deploy may not be able to start",
                [ss],
                data=data,
                **kw,
            )
        return Result(g, "port", PASS, f"port {port} is free for when the deploy starts", data=data, **kw)
    if not held_by_us:
        if unknown:
            return Result(
                g,
                "port",
                WARN,
                f"port {port} is listening but its owner cannot be read (run trouble_shooting.sh as root)",
                [ss],
                data=data,
                **kw,
            )
        return Result(
            g,
            "port",
            FAIL,
            f"gunicorn pid {ctx.deploy_fact(d, 'master')} runs but nothing listens on port {port}",
            [ss, ctx.install_cmd(d.root, "restart", d.name)],
            data=data,
            **kw,
        )
    addrs = sorted({sock.address for sock in held_by_us})
    if not any(covers(a, d.host) for a in addrs):
        return Result(
            g,
            "port",
            WARN,
            f"listening on {', '.join(addrs)}:{port} but configured for {d.host}",
            [ss, ctx.install_cmd(d.root, "restart", d.name)],
            data=data,
            **kw,
        )
    ctx.set_deploy_fact(d, "listening", addrs)
    return Result(
        g, "port", PASS, f"{', '.join(addrs)}:{port} is listening, owned by this deploy's gunicorn", data=data, **kw
    )


def checks(ctx: Context) -> Iterable[Result]:
    listeners = procfs.listeners()
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken"):
            continue
        yield port_check(ctx, d, listeners)
