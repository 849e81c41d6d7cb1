"""Key errors in recent logs (EasyTroubleShoot's "关键报错日志"): tracebacks, 337000 / license
failures, gunicorn WORKER TIMEOUT, out-of-memory kills (also in the kernel log), with the lines."""

from __future__ import annotations

import calendar
import re
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from .core import PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "logs"
ORDER = 70
TAIL_BYTES = 2 << 20  # the end of each log is what matters; never read gigabytes
WINDOW_HOURS = 24.0  # "recent": overridable with --since HOURS
LOG_NAMES = ("error.log", "gunicorn.out", "error.log.1")
# An OOM-killer line about one of ours (the kernel names the victim's comm).
KERNEL_OOM = re.compile(r"(Out of memory|oom-kill|Killed process).*(gunicorn|python|visionpack)", re.I)
_TS = re.compile(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:[.,]\d+)?\s*(?:([+-])(\d\d):?(\d\d)|Z)?")

# category -> (check name, pattern, what it means)
PATTERNS: dict[str, tuple[str, re.Pattern[str], str]] = {
    "traceback": (
        "log-tracebacks",
        re.compile(r"Traceback \(most recent call last\)"),
        "traceback(s) (Python, or Paddle C++)",
    ),
    "license": (
        "log-license",
        re.compile(r"337000|Auth check failed|license check failed", re.I),
        "license failures (337000)",
    ),
    "timeout": ("log-worker-timeouts", re.compile(r"WORKER TIMEOUT"), "gunicorn WORKER TIMEOUT(s)"),
    "oom": (
        "log-oom",
        re.compile(r"out of memory|MemoryError|oom-kill|Killed process|std::bad_alloc", re.I),
        "out-of-memory kill(s)",
    ),
}


def parse_time(line: str) -> float | None:
    m = _TS.search(line[:64])
    if not m:
        return None
    try:
        t = calendar.timegm(time.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S"))
    except ValueError:
        return None
    if m.group(3):  # explicit offset: convert to UTC; without one, gunicorn/logging print local time
        off = (int(m.group(4)) * 60 + int(m.group(5))) * 60
        return t - off if m.group(3) == "+" else t + off
    return t + time.timezone if time.localtime().tm_isdst <= 0 else t + time.altzone


def read_tail(path: Path, limit: int = TAIL_BYTES) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > limit else lines  # the first line of a cut tail is partial


def scan(lines: list[str], since: float) -> dict[str, list[str]]:
    """Matching recent lines per category; a traceback is shown with its final exception line."""
    found: dict[str, list[str]] = {k: [] for k in PATTERNS}
    stamp: float | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        t = parse_time(line)
        if t is not None:
            stamp = t
        recent = stamp is None or stamp >= since  # undated lines before any stamp: keep, to be safe
        if recent:
            for key, (_, pat, _) in PATTERNS.items():
                if not pat.search(line):
                    continue
                if key == "traceback" and "C++ Traceback" in line:
                    summary = _cpp_summary(lines[i + 1 : i + 40])
                    if summary is None:
                        break  # Paddle's report of the SIGTERM of a normal stop: not an error
                    found[key].append(f"{line.strip()} ... {summary}")
                elif key == "traceback":
                    j = i + 1
                    while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
                        j += 1
                    last = lines[j] if j < len(lines) else ""
                    found[key].append(f"{line.strip()} ... {last.strip()}")
                else:
                    found[key].append(line.strip())
        i += 1
    return found


def _cpp_summary(after: list[str]) -> str | None:
    """The error line of a Paddle C++ traceback; None when it only reports a SIGTERM.

    gunicorn stops workers with SIGTERM, and Paddle's signal handler prints a "C++ Traceback"
    ending in "FatalError: `Termination signal`" for it on every stop or restart; counting those
    would warn about every healthy restart for a day.
    """
    for n, ln in enumerate(after):
        m = re.match(r"\s*(\w*(?:Error|Exception):.*)", ln)  # "FatalError: ...", not "Error Message Summary:"
        if m:
            if "Termination signal" in ln and any("SIGTERM" in x for x in after[n + 1 : n + 4]):
                return None
            return m.group(1).strip()
    return after[-1].strip() if after else ""


def fixes(ctx: Context, d: Deploy, key: str, log: Path) -> list[str]:
    if key == "traceback":
        return [
            f"grep -n -A 40 'Traceback' {quote(log)} | tail -n 80",
            "bash trouble_shooting/trouble_shooting.sh --bundle  # send the tarball to support",
        ]
    if key == "license":
        return [
            ctx.install_cmd(d.root, "fingerprint", "--diff", str(d.root / "licenses" / "license.lic")),
            ctx.install_cmd(d.root, "lu", "NEW_LICENSE"),
        ]
    if key == "timeout":
        cfg = d.release / "config.yml" if d.release else "config.yml"
        return [
            f"grep -n '^timeout' {quote(cfg)}  # raise it (seconds per request), then:",
            ctx.install_cmd(d.root, "restart", d.name),
        ]
    return ["free -m", "# fewer workers use less memory: reinstall with --workers N"]


def deploy_logs(ctx: Context, d: Deploy, since: float) -> list[Result]:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    merged: dict[str, list[str]] = {k: [] for k in PATTERNS}
    where: dict[str, Path] = {}
    for name in LOG_NAMES:
        path = d.dir / "logs" / name
        for key, lines in scan(read_tail(path), since).items():
            if lines:
                merged[key] += [f"{name}: {ln}" for ln in lines]
                where.setdefault(key, path)
    out = []
    hours = (time.time() - since) / 3600
    for key, (check, _, what) in PATTERNS.items():
        lines = merged[key]
        if lines:
            # Newest last, as in the file; the report shows the first 10 like EasyTroubleShoot.
            out.append(
                Result(
                    g,
                    check,
                    WARN,
                    f"{len(lines)} {what} in {d.dir / 'logs'} in the last {hours:.0f} h",
                    fixes(ctx, d, key, where[key]),
                    lines[-10:],
                    data={"count": len(lines)},
                    **kw,
                )
            )
        else:
            out.append(Result(g, check, PASS, f"no {what} in the last {hours:.0f} h", **kw))
    return out


def kernel_lines() -> tuple[list[str], str]:
    """OOM-killer lines about our processes from dmesg or the kernel log files, and where from."""
    sources = []
    try:
        p = subprocess.run(["dmesg"], capture_output=True, timeout=5, check=False)
        if p.returncode == 0:
            sources.append(("dmesg", p.stdout.decode("utf-8", "replace").splitlines()))
    except (OSError, subprocess.SubprocessError):
        pass
    for f in ("/var/log/kern.log", "/var/log/messages"):
        lines = read_tail(Path(f))
        if lines:
            sources.append((f, lines))
    hits = [f"{src}: {ln.strip()}" for src, lines in sources for ln in lines if KERNEL_OOM.search(ln)]
    return hits, ", ".join(s for s, _ in sources) or "none readable"


def checks(ctx: Context) -> Iterable[Result]:
    since = time.time() - float(ctx.facts.get("since_hours", WINDOW_HOURS)) * 3600
    for d in ctx.deploys:
        if (d.dir / "logs").is_dir():
            yield from deploy_logs(ctx, d, since)
    hits, where = kernel_lines()
    if hits:
        yield Result(
            "host",
            "kernel-oom",
            WARN,
            f"the kernel OOM killer hit our processes ({where})",
            ["free -m", "# fewer workers use less memory: reinstall with --workers N"],
            hits[-10:],
        )
    else:
        yield Result("host", "kernel-oom", PASS, f"no OOM kills of gunicorn/python in the kernel log ({where})")
