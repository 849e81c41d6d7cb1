"""status [DEPLOY]: running/stopped/failed, pids, address, release, readiness. Read-only."""

from __future__ import annotations

from ...errors import NotInstalled
from .. import journal
from ..context import Context
from ..deployment import describe


def status(ctx: Context, deploy: str | None) -> dict:
    names = [deploy] if deploy else ctx.root.deploy_names()
    out = []
    for name in names:
        paths = ctx.root.deploy(name)
        state = journal.load(paths)
        if state is None:
            raise NotInstalled(f"{name!r} is not installed under {ctx.root.path}")
        out.append(describe(paths, state))
    return {"root": str(ctx.root.path), "deploys": out}


def render(doc: dict) -> list[str]:
    if not doc["deploys"]:
        return [f"nothing installed under {doc['root']}"]
    lines = []
    for d in doc["deploys"]:
        if d["state"] == "running":
            ready = {True: "ready", False: "NOT ready", None: "readiness unknown"}[d["ready"]]
            workers = " ".join(map(str, d["worker_pids"])) or "none"
            lines.append(f"run: {d['deploy']}: (pid {d['pid']}, workers {workers}) release {d['release']} "
                         f"http://{d['host']}:{d['port']} {ready}")
        elif d["state"] == "not-installed":
            lines.append(f"down: {d['deploy']}: not installed")
        else:
            want = ", want up" if d["desired"] == "running" else ""
            lines.append(f"{'fail' if d['state'] == 'failed' else 'down'}: {d['deploy']}: {d['state']}{want} "
                         f"release {d['release']} http://{d['host']}:{d['port']}")
        if d["stale_pidfile"]:
            lines.append(f"  note: stale pid file {d['path']}/run/gunicorn.pid (no such gunicorn)")
        if d["interrupted_operation"]:
            op = d["interrupted_operation"]
            lines.append(f"  note: interrupted '{op.get('op')}' at step '{op.get('step')}'; "
                         f"the next install/start/stop/remove of {d['deploy']} repairs it")
    return lines
