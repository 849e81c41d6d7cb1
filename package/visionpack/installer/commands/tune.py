"""tune DEPLOY [--write]: measure the backends again for the current release, as install did; compare with its choice.

Read-only by default: a running release's choice never changes (docs/backends.md). ``--write``
stores the new measurements in the release's config.yml, only while the deploy is stopped, so
the next start runs them.
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from .. import journal, release, tune
from ..context import Context
from ..deployment import describe, require


def run(ctx: Context, deploy: str, *, write: bool = False) -> dict[str, Any]:
    release.yaml_ready(ctx.source)  # the release's config.yml is read on the system python
    paths = ctx.root.deploy(deploy)
    with journal.deploy_lock(paths):
        inst = require(ctx, deploy, recover=True)
        if write and describe(paths, inst.state, probe=False).get("state") == "running":
            raise UsageError(
                f"{deploy} is running release {inst.version}: a running release's backend choice never "
                f"changes. Stop it first ('install.py stop {deploy}'), then 'install.py tune {deploy} --write'"
            )
        cfg = release.config_from_release(inst.release)
        recorded = {role: dict(rec) for role, rec in cfg.tuning.items()}
        measured = tune.tune(inst.venv, inst.release, cfg, ctx.say)
        same = {role: (recorded.get(role) or {}).get("backend") == rec.get("backend") for role, rec in measured.items()}
        if write:
            tune.write(inst.release, measured)
            ctx.say(f"written into {inst.release / 'config.yml'}; the next start of {deploy} runs it")
        return {
            "deploy": deploy,
            "release": inst.version,
            "recorded": {role: rec.get("backend") for role, rec in recorded.items()},
            "measured": measured,
            "same_choice": same,
            "written": write,
        }


def render(doc: dict[str, Any]) -> list[str]:
    lines = [f"{doc['deploy']} release {doc['release']}:"]
    for role, rec in sorted(doc["measured"].items()):
        before = doc["recorded"].get(role)
        verdict = "same as recorded" if doc["same_choice"][role] else f"recorded: {before or 'none'}"
        lines.append(f"  {role}: {rec['backend']} ({verdict})")
    if not doc["measured"]:
        lines.append("  no backend choice to make (backend configured, or none passed)")
    return lines
