"""The last error answers of a deploy, read from its own ``logs/error.log`` (and the rotated
``error.log.1`` when the current file holds too few).

Every error answer is logged once with its log id (api/routes.py, api/front.py, api/wsgi.py);
two line formats reach the file: ours (``2025-01-02 03:04:05,678 [pid] LEVEL logger: log_id=...``)
and gunicorn's (``[2025-01-02 03:04:05 +0000] [pid] [LEVEL] log_id=...``, the HTTP front's
refusals of requests the app never saw). Only a bounded tail of each file is read, so a
large log costs the page no more than ``TAIL_BYTES``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...errors import InternalError, all_error_classes

TAIL_BYTES = 512 * 1024
MAX_ENTRIES = 500
MAX_MESSAGE = 300

_OURS = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,\d+)? \[\d+\] (?P<level>[A-Z]+) [\w.]+: "
    r"log_id=(?P<log_id>\S+) (?P<rest>.*)$"
)
_GUNICORN = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: [+-]\d{4})?\] \[\d+\] \[(?P<level>[A-Z]+)\] "
    r"log_id=(?P<log_id>\S+) (?P<rest>.*)$"
)
_ROUTE = re.compile(r"^route=(?P<route>\S+) (?P<slug>[a-z0-9-]+)(?: (?P<msg>.*))?$")
_FRONT = re.compile(r"^front: (?P<status>\d{3}) (?P<msg>.*)$")


@dataclass(frozen=True)
class ErrorEntry:
    time: str
    level: str
    log_id: str
    route: str
    code: str  # what the client saw: the EasyDL error_code, or the HTTP status for PaddleX/other routes
    slug: str
    message: str


@lru_cache(maxsize=1)
def _codes() -> dict[str, tuple[int, int]]:
    """slug -> (EasyDL code, HTTP status) of every error class (errors.py is the one list)."""
    # Only classes that name their own slug: RequestError and InstallerError inherit the base's.
    return {cls.slug: (cls.easydl_code, cls.http_status) for cls in all_error_classes() if "slug" in vars(cls)}


def _code(route: str, slug: str) -> str:
    easydl, http = _codes().get(slug, (None, None))
    if easydl is None:
        return "?"
    # PaddleX routes answer errorCode = the HTTP status; EasyDL routes and the rest (their
    # envelope carries both) answer error_code.
    return str(http) if route.startswith("paddlex_") else str(easydl)


def parse_line(line: str) -> ErrorEntry | None:
    """One error answer from a log line, or None for any other line (tracebacks, notices)."""
    m = _OURS.match(line) or _GUNICORN.match(line)
    if not m:
        return None
    rest = m.group("rest")
    route = _ROUTE.match(rest)
    if route:
        slug, msg = route.group("slug"), route.group("msg") or ""
        if slug not in _codes() and m.group("level") == "ERROR":  # routes.handle's "internal error: <why>"
            slug, msg = InternalError.slug, f"{slug} {msg}"
        entry = (route.group("route"), _code(route.group("route"), slug), slug, msg)
    else:
        front = _FRONT.match(rest)
        if front:
            entry = ("-", front.group("status"), "http-front", front.group("msg"))
        elif m.group("level") == "ERROR":  # the app failed outside a route (api/wsgi.py): a 500
            entry = ("-", "500", "internal-error", rest)
        else:
            entry = ("-", "?", "-", rest)
    route_name, code, slug, msg = entry
    if len(msg) > MAX_MESSAGE:
        msg = msg[:MAX_MESSAGE] + "…"
    return ErrorEntry(m.group("time"), m.group("level"), m.group("log_id"), route_name, code, slug, msg)


def _tail_lines(path: Path) -> list[str]:
    limit = TAIL_BYTES
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            start = max(0, size - limit)
            fh.seek(start)
            data = fh.read(limit)
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if start > 0 and lines else lines  # the first line may be cut


def recent_errors(log_dir: str | os.PathLike[str], n: int = 50) -> list[ErrorEntry]:
    """The newest ``n`` error answers, newest first."""
    n = max(1, min(n, MAX_ENTRIES))
    base = Path(log_dir) / "error.log"
    found: list[ErrorEntry] = []
    for path in (base, base.with_name("error.log.1")):
        entries = [e for e in map(parse_line, _tail_lines(path)) if e is not None]
        found = entries + found  # the rotated file is older
        if len(found) >= n:
            break
    return list(reversed(found[-n:]))
