"""rollback|rb DEPLOY [--to VERSION]: back to the previous (or a named) kept release, same safety as upgrade."""

from __future__ import annotations

from typing import Any

from ...errors import NotInstalled, StartFailed
from .. import filemodes, journal, releases, switch
from ..context import Context
from ..deployment import require
from ..runtimes.kinds import runtime_for


def rollback(ctx: Context, deploy: str, *, to: str | None, timeout: float) -> dict[str, Any]:
    paths = ctx.root.deploy(deploy)
    if not paths.state.is_file():  # checked before the lock, which would create the deploy dir
        require(ctx, deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        state = inst.state
        current = state["release"]
        kept = releases.kept(state)
        target = to or releases.previous(state)
        if target is None:
            raise NotInstalled(
                f"{deploy} has only release {current}: there is nothing to roll back to; "
                f"'install.py upgrade {deploy} --package DIR' adds a release"
            )
        if target == current:
            raise NotInstalled(f"{deploy} already runs release {current}; 'install.py list' shows its kept releases")
        if target not in kept or not paths.release(target).is_dir():
            raise NotInstalled(
                f"release {target!r} of {deploy} is not kept (kept: {', '.join(kept)}); pick one "
                f"of them, or upgrade to it with --package"
            )
        ctx.say(f"rolling {deploy} back from {current} to {target}")
        journal.begin(paths, state, "rollback", "start", release=target, **{"from": current})
        try:
            filemodes.secure(ctx.root, ctx.say)
            result = switch.activate(
                ctx, paths, state, target, op="rollback", timeout=timeout, runtime=runtime_for(state, ctx.source.top)
            )
        except StartFailed as exc:
            if getattr(exc, "down", False):
                raise
            err = StartFailed(
                f"rollback of {deploy} to {target} failed and was undone; release {current} "
                f"keeps serving. Why: {exc.detail}"
            )
            raise err from None
        ctx.say(f"rolled {deploy} back to {target}")
        return result
