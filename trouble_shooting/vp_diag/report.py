"""Rendering: GitLab-check style text (``Checking X ... / ... Finished``) or one JSON document."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from .core import FAIL, PASS, SKIP, WARN, Result

STATUSES = (PASS, WARN, FAIL, SKIP)
MAX_LINES = 10  # EasyTroubleShoot shows the first 10 matching log lines; so do we


def counts(results: list[Result]) -> dict[str, int]:
    return {s: sum(1 for r in results if r.status == s) for s in STATUSES}


def grouped(results: list[Result]) -> list[tuple]:
    order: list[str] = []
    by: dict[str, list[Result]] = {}
    for r in results:
        if r.group not in by:
            order.append(r.group)
            by[r.group] = []
        by[r.group].append(r)
    return [(g, by[g]) for g in order]


def document(results: list[Result], roots: list[str]) -> dict[str, Any]:
    c = counts(results)
    return {
        "tool": "visionpack trouble_shooting",
        "schema": 1,
        "host": socket.gethostname(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "roots": roots,
        "summary": {"checks": len(results), **{k.lower(): v for k, v in c.items()}, "ok": c[FAIL] == 0},
        "groups": [{"group": g, "checks": [r.to_dict() for r in rs]} for g, rs in grouped(results)],
    }


def text(results: list[Result], roots: list[str]) -> str:
    out = [
        f"visionpack trouble_shooting on {socket.gethostname()} at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        "install roots: " + (", ".join(roots) or "none found"),
        "",
    ]
    for group, rs in grouped(results):
        out.append(f"Checking {group} ...")
        for r in rs:
            out.append(f"  {r.status:<4}  {r.name}: {r.detail}")
            for line in r.lines[:MAX_LINES]:
                out.append(f"        | {line}")
            if len(r.lines) > MAX_LINES:
                out.append(f"        | ... {len(r.lines) - MAX_LINES} more")
            if r.status in (WARN, FAIL) and r.fix:
                out.append("        Try fixing it:")
                out.extend(f"          {cmd}" for cmd in r.fix)
        out.append(f"Checking {group} ... Finished")
        out.append("")
    c = counts(results)
    out.append(f"Summary: {len(results)} checks: {c[PASS]} PASS, {c[WARN]} WARN, {c[FAIL]} FAIL, {c[SKIP]} SKIP")
    if c[FAIL]:
        out.append("Please fix the errors above and rerun the checks.")
    return "\n".join(out) + "\n"


def to_json(results: list[Result], roots: list[str]) -> str:
    return json.dumps(document(results, roots), indent=1, sort_keys=False, ensure_ascii=False) + "\n"
