"""status [DEPLOY]: running/stopped/failed, pids, address, release, readiness. Read-only."""

from __future__ import annotations

from pathlib import Path

from ...errors import LicenseError, NotInstalled, VisionpackError
from .. import journal
from ..context import Context
from ..deployment import describe
from ..licensecheck import check_license


def status(ctx: Context, deploy: str | None) -> dict:
    names = [deploy] if deploy else ctx.root.deploy_names()
    out = []
    for name in names:
        paths = ctx.root.deploy(name)
        state = journal.load(paths)
        if state is None:
            raise NotInstalled(f"{name!r} is not installed under {ctx.root.path}")
        info = describe(paths, state)
        info["license"] = _license(ctx, name, state)
        info["access"] = _access(paths.data)
        out.append(info)
    return {"root": str(ctx.root.path), "deploys": out}


def _license(ctx: Context, name: str, state: dict) -> dict:
    """Days left, or the reason this deploy is not licensed; never fails the status command."""
    rel = (state.get("releases") or {}).get(state.get("release") or "", {})
    runtime_python = Path(rel["runtime"]) / "bin" / "python" if rel.get("runtime") else None
    try:
        verdict = check_license(ctx.root.path, name, state.get("service") or "", runtime_python)
        return {"ok": True, "license_id": verdict.get("license_id"), "days_left": verdict.get("days_left"),
                "expires_at": verdict.get("expires_at"), "warnings": verdict.get("warnings", [])}
    except LicenseError as exc:
        return {"ok": False, "reason": exc.reason, "detail": exc.detail}
    except VisionpackError as exc:
        return {"ok": None, "reason": "unchecked", "detail": exc.detail}


def _access(data_dir: Path) -> dict:
    """The per-scope policies and the number of usable keys (access/store.py); never fails status."""
    from ...access import store

    try:
        state = store.load(data_dir)
    except VisionpackError as exc:
        return {"policies": None, "active_keys": None, "error": exc.detail}
    return {"policies": dict(state.policies), "active_keys": sum(k.active() for k in state.keys)}


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
        for c in d.get("containers") or []:  # docker runtime
            lines.append(f"  container: {c['name']} {c['id']} {c['status']}"
                         + (f" ({c['health']})" if c.get("health") else "")
                         + f", release {c['version']}, restarts {c['restart_count']}")
        lic = d.get("license") or {}
        if lic.get("ok"):
            lines.append(f"  license: {lic['license_id']}, {lic['days_left']} days left (expires {lic['expires_at']})")
        else:
            lines.append(f"  license: NOT valid ({lic.get('reason')}): {lic.get('detail')}")
        acc = d.get("access") or {}
        if acc.get("policies"):
            lines.append(f"  access: {', '.join(f'{s} {p}' for s, p in acc['policies'].items())}; "
                         f"{acc['active_keys']} active API key(s)")
        elif acc.get("error"):
            lines.append(f"  access: {acc['error']}")
        if d["stale_pidfile"]:
            lines.append(f"  note: stale pid file {d['path']}/run/gunicorn.pid (no such gunicorn)")
        if d["interrupted_operation"]:
            op = d["interrupted_operation"]
            lines.append(f"  note: interrupted '{op.get('op')}' at step '{op.get('step')}'; "
                         f"the next install/start/stop/remove of {d['deploy']} repairs it")
    return lines
