"""The kept releases of a deploy: which is current, which is previous, and pruning to the last N.

``state["releases"]`` maps each kept version to ``installed_at``, ``venv`` (its runtime venv) and
``activated_at`` (when it last became current); ``state["history"]`` lists every switch
(install, upgrade, rollback) oldest first, like Helm's revision history. "Previous" is the
release that was current before the current one, as ``helm rollback`` / ``kubectl rollout
undo`` mean it, provided it is still kept.
"""

from __future__ import annotations

from typing import Any, Callable

from . import journal
from .layout import DeployPaths
from .release import remove_tree

DEFAULT_KEEP = 5
HISTORY_MAX = 50


def keep_of(state: dict[str, Any]) -> int:
    value = state.get("keep")
    return value if isinstance(value, int) and value >= 2 else DEFAULT_KEEP


def kept(state: dict[str, Any]) -> list[str]:
    """Kept versions, least recently used first (activated or installed, whichever is later)."""
    rels = state.get("releases") or {}
    return sorted(rels, key=lambda v: (_last_used(rels[v]), v))


def _last_used(info: dict[str, Any]) -> str:
    return max(str(info.get("activated_at") or ""), str(info.get("installed_at") or ""))


def previous(state: dict[str, Any]) -> str | None:
    """The kept release that was current before the current one (None if there is none)."""
    current = state.get("release")
    rels = state.get("releases") or {}
    for entry in reversed(state.get("history") or []):
        version: str | None = entry.get("release")
        if version != current and version in rels:
            return version
    others = [v for v in kept(state) if v != current]
    return others[-1] if others else None


def record_activation(state: dict[str, Any], version: str, op: str) -> None:
    at = journal.now()
    state.setdefault("releases", {}).setdefault(version, {})["activated_at"] = at
    history = state.setdefault("history", [])
    history.append({"release": version, "at": at, "op": op})
    del history[:-HISTORY_MAX]


def to_prune(state: dict[str, Any], keep: int | None = None) -> list[str]:
    """Versions beyond the newest ``keep``; never the current or the previous release."""
    keep = keep or keep_of(state)
    protected = {state.get("release"), previous(state)}
    newest_first = list(reversed(kept(state)))
    survivors = [v for v in newest_first if v in protected]
    for v in newest_first:
        if v not in protected and len(survivors) < keep:
            survivors.append(v)
    return [v for v in kept(state) if v not in survivors]


def prune(paths: DeployPaths, state: dict[str, Any], say: Callable[[str], None], keep: int | None = None) -> list[str]:
    """Forget, then delete, releases beyond the last ``keep`` (state first: a crash leaves an orphan dir)."""
    gone = to_prune(state, keep)
    if not gone:
        return []
    for version in gone:
        del state["releases"][version]
    journal.save(paths, state)
    for version in gone:
        remove_tree(paths.release(version))
        remove_tree(paths.release_run(version))
        say(f"pruned release {version} (keeping the last {keep or keep_of(state)})")
    return gone


def sweep_orphans(paths: DeployPaths, state: dict[str, Any], say: Callable[[str], None]) -> list[str]:
    """Delete release dirs the journal does not know (left by a killed prune or upgrade)."""
    if not paths.releases.is_dir():
        return []
    known = set(state.get("releases") or {}) | {state.get("release")}
    gone = []
    for d in sorted(paths.releases.iterdir()):
        if d.name not in known and not d.name.startswith("."):
            remove_tree(d)
            gone.append(d.name)
            say(f"removed {d} (not a kept release: left by an interrupted operation)")
    return gone
