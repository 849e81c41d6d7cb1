"""upgrade|up DEPLOY [--package DIR]: install a newer package's release beside the running one, switch.

An *update package* (same ``original/requirements.lock``) reuses the runtime venv; a *full
package* (another lock) gets its own, built from its wheelhouse. The switch itself (prove,
hand the socket over, retire the old master, prune) is switch.activate's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import AlreadyInstalled, StartFailed, UsageError
from .. import filemodes, journal, release, switch, tune, venvs
from ..context import Context
from ..deployment import require
from ..runtimes.kinds import runtime_for
from ..source import Source


def source_of(ctx: Context, package: str | None) -> Source:
    if not package:
        return ctx.source
    top = Path(package).expanduser().resolve()
    if (top / "Install" / "install.py").is_file() and not (top / "package").is_dir():
        top = top.parent  # given package/ itself
    if not (top / "package" / "VERSION").is_file():
        raise UsageError(f"{top} is not an unpacked visionpack package (no package/VERSION)")
    return Source(top)


def upgrade(ctx: Context, deploy: str, *, package: str | None, timeout: float, keep: int | None) -> dict[str, Any]:
    source = source_of(ctx, package)
    release.yaml_ready(source)
    entry = source.entry(deploy)
    version = source.version()
    paths = ctx.root.deploy(deploy)
    if not paths.state.is_file():  # checked before the lock, which would create the deploy dir
        require(ctx, deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        state = inst.state
        if keep:
            state["keep"] = keep
        if version == state["release"]:
            raise AlreadyInstalled(
                f"{deploy} already runs release {version} (from {source.top}); bump "
                f"package/VERSION of the new package, or 'install.py rollback' to go back"
            )
        if version in (state.get("releases") or {}):
            raise AlreadyInstalled(
                f"release {version} of {deploy} is already kept (installed "
                f"{state['releases'][version].get('installed_at')}); 'install.py rollback "
                f"{deploy} --to {version}' switches back to it"
            )
        if entry.service != state.get("service"):
            raise UsageError(
                f"{deploy} runs service {state.get('service')!r}; this package offers it as "
                f"{entry.service!r}: remove and install instead"
            )
        ctx.say(f"upgrading {deploy} from {state['release']} to {version} ({source.top})")
        journal.begin(paths, state, "upgrade", "runtime", release=version, **{"from": state["release"]})
        try:
            venv = venvs.ensure(ctx.root, source, say=ctx.say)
            same = str(venv) == (state["releases"].get(state["release"]) or {}).get("venv")
            ctx.say(f"runtime {venv} ({'reused: same lock file' if same else 'full package: its own runtime'})")
            copied = release.copy_licenses(ctx.root, source)  # public keys; never replaces license.lic
            if copied:
                ctx.say(f"licenses: {', '.join(copied)} -> {ctx.root.licenses}")
            journal.begin(paths, state, "upgrade", "release")
            rel_dir = paths.release(version)
            if rel_dir.exists():
                release.remove_tree(rel_dir)  # not kept (checked above): a leftover of a killed run
            cfg = release.service_config(
                ctx.root,
                paths,
                entry,
                rel_dir,
                host=state["host"],
                port=int(state["port"]),
                workers=int(state.get("workers") or 1),
                gallery=state.get("gallery"),
                device=state.get("device") or "cpu",
            )
            release.build(ctx.root, paths, source, entry, version, cfg, venv)
            # The new release's own choice, measured now; the old release keeps its own (rollback).
            tune.tune_release(venv, rel_dir, cfg, ctx.say)
            ctx.say(f"release {version} -> {rel_dir}")
            filemodes.secure(ctx.root, ctx.say)  # also repairs what an older installer left
        except BaseException:
            ctx.say(f"upgrade of {deploy} to {version} failed; undoing it")
            switch.undo(ctx, paths, state)
            raise
        try:
            # The new release runs on the new package (docker: its image).
            result = switch.activate(
                ctx, paths, state, version, op="upgrade", timeout=timeout, runtime=runtime_for(state, source.top)
            )
        except StartFailed as exc:
            if getattr(exc, "down", False):
                raise
            raise _rolled_back(exc, deploy, version, state["release"]) from None
        ctx.say(
            f"upgraded {deploy} to {version}"
            + (f"; pruned {', '.join(result['pruned'])}" if result.get("pruned") else "")
        )
        return result


def _rolled_back(exc: StartFailed, deploy: str, version: str, current: str) -> StartFailed:
    return StartFailed(
        f"upgrade of {deploy} to {version} failed and was rolled back; release {current} "
        f"keeps serving. Why: {exc.detail}"
    )
