"""Host: CPU features Paddle needs, disk and memory headroom (issue 7 item 3)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Callable

from .core import FAIL, PASS, WARN, Context, Result

GROUP = "host"
ORDER = 10
GIB = 1 << 30
MIB = 1 << 20
# Paddle's x86 wheel is built for AVX: without it the import dies with SIGILL (hard failure).
# AVX2/FMA/SSE4.2 are what its MKL/oneDNN kernels use for speed: missing them is slow, not fatal.
REQUIRED_FLAGS = ("avx",)
WANTED_FLAGS = ("avx2", "fma", "sse4_2")
# Headroom while running (install.py wants 2 GiB disk / 1 GiB memory before installing):
# below the FAIL line logs stop being written / workers get OOM-killed.
DISK_WARN, DISK_FAIL = 2 * GIB, 512 * MIB
MEM_WARN, MEM_FAIL = 1 * GIB, 256 * MIB


def cpu_check(cpuinfo: Path = Path("/proc/cpuinfo")) -> Result:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return Result(
            GROUP, "cpu-features", FAIL, f"cannot read {cpuinfo}: {exc.strerror}", ["mount -t proc proc /proc"]
        )
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    missing = [f for f in REQUIRED_FLAGS if f not in flags]
    slow = [f for f in WANTED_FLAGS if f not in flags]
    data = {"missing_required": missing, "missing_wanted": slow}
    fix = [
        "grep -o -w -E 'avx|avx2|fma|sse4_2' /proc/cpuinfo | sort -u",
        "# on a VM expose the host CPU model (e.g. qemu '-cpu host', VMware 'EVC off')",
    ]
    if missing:
        return Result(
            GROUP,
            "cpu-features",
            FAIL,
            f"CPU lacks {', '.join(missing)}: PaddlePaddle's x86 wheel "
            "dies with SIGILL (illegal instruction) without it",
            fix,
            data=data,
        )
    if slow:
        return Result(
            GROUP, "cpu-features", WARN, f"CPU lacks {', '.join(slow)}: inference works but is slower", fix, data=data
        )
    return Result(GROUP, "cpu-features", PASS, "CPU has " + ", ".join(REQUIRED_FLAGS + WANTED_FLAGS), data=data)


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def disk_check(path: Path, statvfs: Callable = os.statvfs, warn: int = DISK_WARN, fail: int = DISK_FAIL) -> Result:
    where = _existing(path)
    st = statvfs(str(where))
    free = st.f_bavail * st.f_frsize
    detail = f"{free / GIB:.1f} GiB free under {where}"
    fix = [f"df -h {where}", f"du -xsh {where}/*/logs 2>/dev/null | sort -h | tail"]
    if free < fail:
        return Result(
            GROUP,
            f"disk {where}",
            FAIL,
            detail + f" (below {fail // MIB} MiB: logs and state cannot be written)",
            fix,
            data={"free": free},
        )
    if free < warn:
        return Result(GROUP, f"disk {where}", WARN, detail + f" (below {warn // GIB} GiB)", fix, data={"free": free})
    return Result(GROUP, f"disk {where}", PASS, detail, data={"free": free})


def memory_check(meminfo: Path = Path("/proc/meminfo"), warn: int = MEM_WARN, fail: int = MEM_FAIL) -> Result:
    try:
        text = meminfo.read_text(encoding="utf-8")
    except OSError as exc:
        return Result(GROUP, "memory", FAIL, f"cannot read {meminfo}: {exc.strerror}", ["mount -t proc proc /proc"])
    m = re.search(r"^MemAvailable:\s+(\d+)\s+kB", text, re.M) or re.search(r"^MemFree:\s+(\d+)\s+kB", text, re.M)
    if not m:
        return Result(GROUP, "memory", WARN, f"{meminfo} has no MemAvailable line", ["free -m"])
    avail = int(m.group(1)) * 1024
    detail = f"{avail / GIB:.1f} GiB memory available"
    fix = [
        "free -m",
        "ps -eo pid,rss,cmd --sort=-rss | head",
        "# or lower --workers: each worker holds its own copy of the model",
    ]
    if avail < fail:
        return Result(
            GROUP,
            "memory",
            FAIL,
            detail + f" (below {fail // MIB} MiB: workers will be OOM-killed)",
            fix,
            data={"available": avail},
        )
    if avail < warn:
        return Result(GROUP, "memory", WARN, detail + f" (below {warn // GIB} GiB)", fix, data={"available": avail})
    return Result(GROUP, "memory", PASS, detail, data={"available": avail})


def disk_paths(ctx: Context) -> list[Path]:
    """The filesystems we write to: each root, and the machine-wide licensing state."""
    paths: list[Path] = list(ctx.roots) + [Path("/var/lib/visionpack")]
    seen, out = set(), []
    for p in paths:
        dev = os.stat(_existing(p)).st_dev
        if dev not in seen:
            seen.add(dev)
            out.append(p)
    return out


def checks(ctx: Context) -> Iterable[Result]:
    yield cpu_check()
    yield memory_check()
    for p in disk_paths(ctx):
        yield disk_check(p)
