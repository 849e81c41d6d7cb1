"""Releases (upgrade/rollback): kept releases complete, the rollback target usable, one master
serving the release state.json names, no orphan release directories.

Mirrors installer/releases.py's notion of "previous" (the last release in ``history`` other
than the current one that is still kept), because that is what ``install.py rollback`` picks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import procfs
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "releases"
ORDER = 45
NEEDED = ("release.json", "config.yml", "start/gunicorn_conf.py", "package/visionpack/__init__.py")


def previous(state: dict[str, Any]) -> str | None:
    current, rels = state.get("release"), state.get("releases") or {}
    for entry in reversed(state.get("history") or []):
        v = entry.get("release") if isinstance(entry, dict) else None
        if v != current and v in rels:
            return v
    others = sorted(
        (v for v in rels if v != current),
        key=lambda v: (max(str(rels[v].get("activated_at") or ""), str(rels[v].get("installed_at") or "")), v),
    )
    return others[-1] if others else None


def release_problems(d: Deploy, version: str) -> list[str]:
    rel = d.dir / "releases" / version
    if not rel.is_dir():
        return [f"{rel} is missing"]
    out = [f"{version}/{f} is missing" for f in NEEDED if not (rel / f).exists()]
    try:
        runtime = json.loads((rel / "release.json").read_text(encoding="utf-8")).get("runtime")
    except (OSError, ValueError, AttributeError):
        runtime = None
    if runtime and not (Path(runtime) / "bin" / "python").exists():
        out.append(f"{version}'s runtime {runtime} is gone")
    return out


def release_of(p: procfs.Proc, d: Deploy) -> str | None:
    marker = f"{d.dir}/releases/"
    texts = [p.cmdline]
    try:
        env = Path(f"/proc/{p.pid}/environ").read_bytes().split(b"\0")
        texts += [e.decode("utf-8", "replace") for e in env if e.startswith(b"VISIONPACK_CONFIG=")]
    except OSError:
        pass
    for t in texts:
        if marker in t:
            rest = t.split(marker, 1)[1]
            if "/" in rest:
                return rest.split("/", 1)[0]
    return None


def masters(d: Deploy, procs: list[procfs.Proc]) -> dict[int, str | None]:
    ours = {p.pid: p for p in procs if procfs.is_ours(p, d.dir, d.name)}
    return {pid: release_of(p, d) for pid, p in sorted(ours.items()) if p.ppid not in ours}


def rollback_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    prev = previous(d.state or {})
    if prev is None:
        return Result(g, "rollback-target", PASS, "no previous release kept (nothing to roll back to yet)", **kw)
    bad = release_problems(d, prev)
    if bad:
        return Result(
            g,
            "rollback-target",
            WARN,
            f"'install.py rollback' would go to {prev}, which is not usable",
            [ctx.install_cmd(d.root, "list"), f"ls -l {quote(d.dir / 'releases')}"],
            bad,
            **kw,
        )
    return Result(g, "rollback-target", PASS, f"rollback would go to {prev} (complete, runtime present)", **kw)


def kept_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    state = d.state or {}
    kept = sorted(set(state.get("releases") or {}) - {d.version})
    bad = [p for v in kept for p in release_problems(d, v)]
    known = set(state.get("releases") or {}) | {d.version}
    rdir = d.dir / "releases"
    orphans = (
        sorted(p.name for p in rdir.iterdir() if p.is_dir() and p.name not in known and not p.name.startswith("."))
        if rdir.is_dir()
        else []
    )
    lines = bad + [f"{o}: not in state.json (left by an interrupted operation)" for o in orphans]
    if lines:
        fix = [ctx.install_cmd(d.root, "list")]
        fix += [f"rm -rf {quote(rdir / o)}" for o in orphans]
        return Result(
            g,
            "kept-releases",
            WARN,
            f"{len(bad)} problem(s) in kept releases, {len(orphans)} orphan release dir(s)",
            fix,
            lines,
            **kw,
        )
    return Result(g, "kept-releases", PASS, f"kept besides the current: {', '.join(kept) or 'none'}", **kw)


def masters_check(ctx: Context, d: Deploy, procs: list[procfs.Proc]) -> Result | None:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    found = masters(d, procs)
    if not found:
        return None  # processes.py reports a deploy that should run and does not
    shown = ", ".join(f"pid {p} ({v or '?'})" for p, v in found.items())
    op = (d.state or {}).get("operation") or {}
    if len(found) > 1:
        if op.get("op") in ("upgrade", "rollback"):
            return Result(
                g,
                "masters",
                WARN,
                f"{len(found)} masters during an {op['op']}: {shown}",
                ["# wait for it to finish, then rerun"],
                **kw,
            )
        strays = [p for p, v in found.items() if v != d.version]
        return Result(
            g,
            "masters",
            FAIL,
            f"{len(found)} masters serve this deploy: {shown}; state.json names release {d.version}",
            [f"kill {' '.join(map(str, strays))}  # the ones not running {d.version}"]
            if strays
            else [ctx.install_cmd(d.root, "restart", d.name)],
            **kw,
        )
    ((pid, version),) = found.items()
    if version is not None and version != d.version:
        return Result(
            g,
            "masters",
            FAIL,
            f"pid {pid} serves release {version} but state.json names {d.version}",
            [ctx.install_cmd(d.root, "restart", d.name)],
            **kw,
        )
    return Result(g, "masters", PASS, f"one master, serving release {version or d.version}", **kw)


def checks(ctx: Context) -> Iterable[Result]:
    procs = procfs.all_procs()
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or not d.version:
            continue
        yield kept_check(ctx, d)
        yield rollback_check(ctx, d)
        m = masters_check(ctx, d, procs)
        if m is not None:
            yield m
