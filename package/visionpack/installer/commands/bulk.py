"""inall / rmall: install every deploy this package offers, or remove every installed deploy (EasyPack's)."""

from __future__ import annotations

from typing import Any

from ...errors import AlreadyInstalled, VisionpackError
from .. import journal, release
from ..context import Context
from .install import install
from .remove import remove


def inall(
    ctx: Context, *, host: str, workers: int, force: bool, stopped: bool, timeout: float, runtime_kind: str = "process"
) -> dict[str, Any]:
    """Install each catalog deploy on its catalog port; already installed ones are skipped."""
    release.yaml_ready(ctx.source)
    rows: list[dict[str, Any]] = []
    for name, entry in sorted(ctx.source.catalog().items()):
        state = journal.load(ctx.root.deploy(name))
        if state and state.get("release"):
            ctx.say(f"{name}: already installed (release {state['release']}); skipped")
            rows.append({"deploy": name, "result": "skipped", "release": state["release"]})
            continue
        ctx.say(f"== installing {name} (port {entry.port})")
        try:
            done = install(
                ctx,
                name,
                host=host,
                port=None,
                workers=workers,
                force=force,
                stopped=stopped,
                timeout=timeout,
                runtime_kind=runtime_kind,
            )
            rows.append({"deploy": name, "result": "installed", "release": done["release"]})
        except AlreadyInstalled as exc:
            rows.append({"deploy": name, "result": "skipped", "detail": exc.detail})
        except VisionpackError as exc:
            # One deploy's failure must not hide the others'; the exit code says something failed.
            ctx.warn(f"{name}: {exc.detail}")
            rows.append(
                {
                    "deploy": name,
                    "result": "failed",
                    "error": exc.slug,
                    "exit_code": exc.exit_code,
                    "detail": exc.detail,
                    "exc": exc,
                }
            )
    return _summary(ctx, rows)


def rmall(ctx: Context, *, purge: bool) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for name in ctx.root.deploy_names():
        ctx.say(f"== removing {name}")
        try:
            remove(ctx, name, purge=purge)
            rows.append({"deploy": name, "result": "removed"})
        except VisionpackError as exc:
            ctx.warn(f"{name}: {exc.detail}")
            rows.append(
                {
                    "deploy": name,
                    "result": "failed",
                    "error": exc.slug,
                    "exit_code": exc.exit_code,
                    "detail": exc.detail,
                    "exc": exc,
                }
            )
    if not rows:
        ctx.say(f"nothing installed under {ctx.root.path}")
    return _summary(ctx, rows)


def _summary(ctx: Context, rows: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [r for r in rows if r["result"] == "failed"]
    for r in rows:
        ctx.say(f"{r['deploy']}: {r['result']}" + (f" ({r['detail']})" if r.get("detail") else ""))
    worst = max(failed, key=lambda r: r["exit_code"])["exc"] if failed else None
    return {
        "deploys": [{k: v for k, v in r.items() if k != "exc"} for r in rows],
        "failed": len(failed),
        "worst": worst,
    }
