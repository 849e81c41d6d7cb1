"""Reading processes, listening sockets and interface addresses straight from /proc (stdlib)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    cmdline: str

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def proc(pid: int, base: Path = PROC) -> Proc | None:
    try:
        stat = (base / str(pid) / "stat").read_text()
        raw = (base / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    rest = stat.rsplit(")", 1)[-1].split()  # comm may contain spaces and ')'
    if len(rest) < 2:
        return None
    return Proc(pid, int(rest[1]), rest[0], raw.replace(b"\0", b" ").decode("utf-8", "replace").strip())


def all_procs(base: Path = PROC) -> list[Proc]:
    out = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return out
    for e in entries:
        if e.name.isdigit():
            p = proc(int(e.name), base)
            if p is not None:
                out.append(p)
    return out


def is_ours(p: Proc | None, deploy_dir: Path, deploy: str) -> bool:
    """Same rule as installer/procs.is_ours: proc title, or gunicorn naming this deploy's releases."""
    if p is None or not p.alive:
        return False
    if f"[visionpack:{deploy}]" in p.cmdline:
        return True
    return "gunicorn" in p.cmdline and f"{deploy_dir}/releases/" in p.cmdline


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def children(pid: int, procs: list[Proc]) -> list[int]:
    return sorted(p.pid for p in procs if p.ppid == pid and p.alive)


@dataclass(frozen=True)
class Listener:
    address: str  # "0.0.0.0", "127.0.0.1", "::", ...
    port: int
    inode: int


def _decode_addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])  # /proc prints the u32 in host (little) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listeners(base: Path = PROC) -> list[Listener]:
    """Every TCP socket in LISTEN state in this network namespace."""
    out = []
    for name in ("tcp", "tcp6"):
        try:
            lines = (base / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[3] != TCP_LISTEN:
                continue
            addr, port = f[1].rsplit(":", 1)
            out.append(Listener(_decode_addr(addr), int(port, 16), int(f[9])))
    return out


def socket_owners(inodes: set[int], base: Path = PROC) -> dict[int, list[int]]:
    """inode -> pids holding that socket (needs permission to read their fd tables)."""
    want = {f"socket:[{i}]": i for i in inodes}
    owners: dict[int, list[int]] = {i: [] for i in inodes}
    if not want:
        return owners
    try:
        entries = list(base.iterdir())
    except OSError:
        return owners
    for e in entries:
        if not e.name.isdigit():
            continue
        try:
            fds = os.listdir(e / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(e / "fd" / fd)
            except OSError:
                continue
            if target in want:
                owners[want[target]].append(int(e.name))
    for pids in owners.values():
        pids.sort()
    return owners


def own_addresses() -> list[str]:
    """This host's own non-loopback unicast addresses (IPv4 by ioctl, IPv6 from /proc/net/if_inet6)."""
    out: list[str] = []
    try:
        names = [n for _, n in socket.if_nameindex()]
    except OSError:
        names = []
    SIOCGIFADDR = 0x8915
    for name in names:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
        addr = socket.inet_ntoa(res[20:24])
        if not ipaddress.ip_address(addr).is_loopback and addr not in out:
            out.append(addr)
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            f = line.split()
            addr = str(ipaddress.ip_address(bytes.fromhex(f[0])))
            ip = ipaddress.ip_address(addr)
            # Link-local needs a scope id and is not how clients reach a server; skip it.
            if not (ip.is_loopback or ip.is_link_local) and addr not in out:
                out.append(addr)
    except (OSError, ValueError, IndexError):
        pass
    return out
