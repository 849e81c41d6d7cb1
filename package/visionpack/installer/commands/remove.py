"""remove|rm DEPLOY [--purge]: stop it, delete the releases; data/ stays unless --purge."""

from __future__ import annotations

from typing import Any

from ...errors import NotInstalled
from .. import journal, recovery, venv_gc
from ..context import Context
from ..installed import Installed
from ..runtimes.kinds import runtime_for


def remove(ctx: Context, deploy: str, *, purge: bool) -> dict[str, Any]:
    paths = ctx.root.deploy(deploy)
    if not paths.dir.is_dir():
        raise NotInstalled(f"{deploy!r} is not installed under {ctx.root.path}")
    with journal.deploy_lock(paths):
        state = recovery.recover(paths, journal.load(paths), ctx.say)
        if state is None:
            if not purge:
                raise NotInstalled(
                    f"{deploy!r} is not installed under {ctx.root.path} "
                    f"(only kept data is left; 'remove --purge' deletes it)"
                )
            recovery.delete_deploy(paths, purge=True, say=ctx.say)
            return {"deploy": deploy, "purged": True, "was_running": False}
        was_running = runtime_for(state).remove(ctx, Installed(paths, state))
        journal.begin(paths, state, "remove", "delete", purge=purge)
        recovery.delete_deploy(paths, purge=purge, say=ctx.say)
    return {
        "deploy": deploy,
        "purged": purge,
        "was_running": was_running,
        "runtimes_removed": venv_gc.collect_safely(ctx.root, ctx.say),
    }
