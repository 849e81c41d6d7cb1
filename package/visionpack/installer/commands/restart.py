"""restart DEPLOY: stop then start under one lock, so no other installer slips in between."""

from __future__ import annotations

from typing import Any

from .. import journal
from ..context import Context
from ..deployment import require
from .start import start_installed
from .stop import stop_installed


def restart(ctx: Context, deploy: str, *, timeout: float) -> dict[str, Any]:
    paths = ctx.root.deploy(deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        stop_installed(ctx, inst)
        pid = start_installed(ctx, inst, timeout=timeout)
        return {"deploy": deploy, "pid": pid}
