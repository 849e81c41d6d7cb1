"""search|se: what this package offers (the catalog), EasyPack's 'se'."""

from __future__ import annotations

from typing import Any

from .. import journal, release
from ..context import Context


def search(ctx: Context) -> dict[str, Any]:
    release.yaml_ready(ctx.source)
    version = ctx.source.version()
    rows = []
    for name, entry in sorted(ctx.source.catalog().items()):
        state = journal.load(ctx.root.deploy(name))
        rows.append(dict(entry.to_dict(), version=version, installed=bool(state and state.get("release"))))
    return {"package_version": version, "deploys": rows}


def render(doc: dict[str, Any]) -> list[str]:
    lines = []
    for d in doc["deploys"]:
        mark = " (installed)" if d["installed"] else ""
        lines.append(
            f"deploy: {d['deploy']}, service: {d['service']}, version: {d['version']}, default port: {d['port']}{mark}"
        )
        if d["description"]:
            lines.append(f"    {d['description']}")
    return lines or ["this package offers no deploys"]
