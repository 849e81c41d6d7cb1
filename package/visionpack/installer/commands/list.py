"""list|li: installed deploys with state, release and address, and every kept release of each."""

from __future__ import annotations

from typing import Any

from .. import journal, releases
from ..context import Context
from ..deployment import describe


def list_installed(ctx: Context) -> dict[str, Any]:
    rows = []
    for name in ctx.root.deploy_names():
        paths = ctx.root.deploy(name)
        state = journal.load(paths)
        if state is None:
            continue
        d = describe(paths, state, probe=False)
        row = {
            k: d[k]
            for k in ("deploy", "service", "state", "desired", "release", "host", "port", "workers", "pid", "path")
        }
        row["runtime"] = d.get("runtime") or "process"
        row["interrupted_operation"] = (state.get("operation") or {}).get("op")
        row["releases"] = kept_releases(state)
        row["keep"] = releases.keep_of(state)
        rows.append(row)
    return {"root": str(ctx.root.path), "deploys": rows}


def kept_releases(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Newest use first: version, installed_at, activated_at, current, previous."""
    prev = releases.previous(state)
    info = state.get("releases") or {}
    return [
        {
            "version": v,
            "installed_at": info[v].get("installed_at"),
            "activated_at": info[v].get("activated_at"),
            "current": v == state.get("release"),
            "previous": v == prev,
            "runtime": info[v].get("venv"),
        }
        for v in reversed(releases.kept(state))
    ]


def render(doc: dict[str, Any]) -> list[str]:
    if not doc["deploys"]:
        return [f"nothing installed under {doc['root']}"]
    lines = [f"{'DEPLOY':<24} {'SERVICE':<15} {'STATE':<9} {'RELEASE':<10} {'RUNTIME':<8} ADDRESS"]
    for d in doc["deploys"]:
        lines.append(
            f"{d['deploy']:<24} {str(d['service']):<15} {d['state']:<9} {str(d['release']):<10} "
            f"{d.get('runtime') or 'process':<8} {d['host']}:{d['port']}"
        )
        for r in d.get("releases") or []:
            mark = "* current " if r["current"] else ("  previous" if r["previous"] else "          ")
            lines.append(
                f"    {mark} {r['version']:<12} installed {r['installed_at']}"
                + (f", last current {r['activated_at']}" if r.get("activated_at") else "")
            )
    return lines
