"""status [DEPLOY]: running/stopped/failed, pids, address, release, readiness. Read-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import LicenseError, NotInstalled, VisionpackError
from .. import journal
from ..context import Context
from ..deployment import describe
from ..licensecheck import check_license
from ..source import Source


def status(ctx: Context, deploy: str | None) -> dict[str, Any]:
    names = [deploy] if deploy else ctx.root.deploy_names()
    out = []
    for name in names:
        paths = ctx.root.deploy(name)
        state = journal.load(paths)
        if state is None:
            raise NotInstalled(f"{name!r} is not installed under {ctx.root.path}")
        info = describe(paths, state)
        info["license"] = _license(ctx, name, state, running=info.get("state") == "running")
        info["access"] = _access(paths.data)
        info["backends"] = _backends(paths.release(state["release"]), ctx.source) if state.get("release") else {}
        out.append(info)
    return {"root": str(ctx.root.path), "deploys": out}


def _license(ctx: Context, name: str, state: dict[str, Any], *, running: bool = False) -> dict[str, Any]:
    """Days left, or the reason this deploy is not licensed; never fails the status command.

    The instance slots are reported apart from the license's validity: every licensed slot in
    use is normal for a running deploy (it holds one of them) and, for a stopped one, only means
    it cannot start until another instance stops; neither makes the license invalid.
    """
    rel = (state.get("releases") or {}).get(state.get("release") or "", {})
    runtime_python = Path(rel["venv"]) / "bin" / "python" if rel.get("venv") else None
    try:
        verdict = check_license(ctx.root.path, name, state.get("service") or "", runtime_python, limit=False)
        licensed, in_use = verdict.get("instances"), verdict.get("instances_running")
        full = isinstance(in_use, int) and isinstance(licensed, int) and in_use >= licensed
        return {
            "ok": True,
            "license_id": verdict.get("license_id"),
            "days_left": verdict.get("days_left"),
            "expires_at": verdict.get("expires_at"),
            "warnings": verdict.get("warnings", []),
            "instances": licensed,
            "instances_running": in_use,
            "slots_full": full,
            "can_start": running or not full,
        }
    except LicenseError as exc:
        return {"ok": False, "reason": exc.reason, "detail": exc.detail}
    except VisionpackError as exc:
        return {"ok": None, "reason": "unchecked", "detail": exc.detail}


def _access(data_dir: Path) -> dict[str, Any]:
    """The per-scope policies and the number of usable keys (access/store.py); never fails status."""
    from ...access import store

    try:
        state = store.load(data_dir)
    except VisionpackError as exc:
        return {"policies": None, "active_keys": None, "error": exc.detail}
    return {"policies": dict(state.policies), "active_keys": sum(k.active() for k in state.keys)}


def _backends(release: Path, source: Source | None = None) -> dict[str, Any]:
    """Per model the backend the release runs and what install/upgrade measured (its config.yml:
    ``backend``/``model_backends`` as configured, else ``tuning``); never fails the status command."""
    from ..release import config_from_release, yaml_ready

    try:
        if source is not None:  # config.py imports yaml: a minimal server's python3 has only the wheelhouse's
            yaml_ready(source)
        cfg = config_from_release(release)
    except VisionpackError as exc:
        return {"error": exc.detail}
    except ImportError as exc:
        return {"error": str(exc)}
    out: dict[str, Any] = {}
    for role in sorted(cfg.models):
        configured = cfg.model_backends.get(role, cfg.backend)
        record = cfg.tuning.get(role) or {}
        measured = {
            kind: c.get("p50_ms") if c.get("ok") else f"not chosen: {c.get('why')}"
            for kind, c in sorted((record.get("candidates") or {}).items())
        }
        if configured != "auto":
            out[role] = {"backend": configured, "how": "configured"}
        elif record.get("backend"):
            out[role] = {"backend": record["backend"], "how": "measured", "p50_ms": measured}
        else:
            out[role] = {"backend": None, "how": "the bundle's own format (nothing measured)"}
    return out


def _slots(lic: dict[str, Any], *, running: bool) -> str:
    """'all N licensed slots in use' is not 'license not valid': say which it is."""
    licensed, in_use = lic.get("instances"), lic.get("instances_running")
    if not isinstance(in_use, int):
        return f"{in_use or 'unknown'} in use of {licensed} licensed on this machine"
    if not lic.get("slots_full"):
        return f"{in_use} of {licensed} licensed slots in use on this machine"
    more = isinstance(licensed, int) and in_use > licensed  # a license without a count has no "more"
    over = f" ({in_use} run: started under a license with more)" if more else ""
    if running:
        return f"all {licensed} licensed slots in use{over}; this deploy holds one"
    return (
        f"all {licensed} licensed slots in use{over}: starting this deploy is refused (instance-limit) "
        f"until another instance stops"
    )


def render(doc: dict[str, Any]) -> list[str]:
    if not doc["deploys"]:
        return [f"nothing installed under {doc['root']}"]
    lines = []
    for d in doc["deploys"]:
        if d["state"] == "running":
            ready = {True: "ready", False: "NOT ready", None: "readiness unknown"}[d["ready"]]
            workers = " ".join(map(str, d["worker_pids"])) or "none"
            lines.append(
                f"run: {d['deploy']}: (pid {d['pid']}, workers {workers}) release {d['release']} "
                f"http://{d['host']}:{d['port']} {ready}"
            )
        elif d["state"] == "not-installed":
            lines.append(f"down: {d['deploy']}: not installed")
        else:
            want = ", want up" if d["desired"] == "running" else ""
            lines.append(
                f"{'fail' if d['state'] == 'failed' else 'down'}: {d['deploy']}: {d['state']}{want} "
                f"release {d['release']} http://{d['host']}:{d['port']}"
            )
        for c in d.get("containers") or []:  # docker runtime
            lines.append(
                f"  container: {c['name']} {c['id']} {c['status']}"
                + (f" ({c['health']})" if c.get("health") else "")
                + f", release {c['version']}, restarts {c['restart_count']}"
            )
        lic = d.get("license") or {}
        if lic.get("ok"):
            lines.append(f"  license: {lic['license_id']}, {lic['days_left']} days left (expires {lic['expires_at']})")
            lines.append(f"  instances: {_slots(lic, running=d['state'] == 'running')}")
        else:
            lines.append(f"  license: NOT valid ({lic.get('reason')}): {lic.get('detail')}")
        acc = d.get("access") or {}
        if acc.get("policies"):
            lines.append(
                f"  access: {', '.join(f'{s} {p}' for s, p in acc['policies'].items())}; "
                f"{acc['active_keys']} active API key(s)"
            )
        elif acc.get("error"):
            lines.append(f"  access: {acc['error']}")
        for role, b in sorted((d.get("backends") or {}).items()):
            if role == "error":
                lines.append(f"  backends: {b}")
                continue
            times = ", ".join(
                f"{k} {v:.2f} ms" if isinstance(v, (int, float)) else f"{k} {v}"
                for k, v in (b.get("p50_ms") or {}).items()
            )
            lines.append(
                f"  backend {role}: {b['backend'] or 'own format'} ({b['how']}{'; p50 ' + times if times else ''})"
            )
        if d["stale_pidfile"]:
            lines.append(f"  note: stale pid file {d['path']}/run/gunicorn.pid (no such gunicorn)")
        if d["interrupted_operation"]:
            op = d["interrupted_operation"]
            lines.append(
                f"  note: interrupted '{op.get('op')}' at step '{op.get('step')}'; "
                f"the next install/start/stop/remove of {d['deploy']} repairs it"
            )
    return lines
