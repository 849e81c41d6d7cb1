"""list|li: installed deploys with state, release and address."""

from __future__ import annotations

from .. import journal
from ..context import Context
from ..deployment import describe


def list_installed(ctx: Context) -> dict:
    rows = []
    for name in ctx.root.deploy_names():
        paths = ctx.root.deploy(name)
        state = journal.load(paths)
        if state is None:
            continue
        d = describe(paths, state, probe=False)
        row = {k: d[k] for k in ("deploy", "service", "state", "desired", "release", "host", "port", "workers",
                                 "pid", "path")}
        row["interrupted_operation"] = (state.get("operation") or {}).get("op")
        rows.append(row)
    return {"root": str(ctx.root.path), "deploys": rows}


def render(doc: dict) -> list[str]:
    if not doc["deploys"]:
        return [f"nothing installed under {doc['root']}"]
    lines = [f"{'DEPLOY':<24} {'SERVICE':<15} {'STATE':<9} {'RELEASE':<10} ADDRESS"]
    for d in doc["deploys"]:
        lines.append(f"{d['deploy']:<24} {str(d['service']):<15} {d['state']:<9} {str(d['release']):<10} "
                     f"{d['host']}:{d['port']}")
    return lines
