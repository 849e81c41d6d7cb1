"""What the overview page says about a deploy: its releases, models and their backends, license
and readiness. Read-only, from the config, the install root's ``<ROOT>/<DEPLOY>/state.json``
and the worker's own state.

The service user may read state.json (the installer writes it 0644 in a 0755 deploy
directory: installer/filemodes.py leaves both so); where it cannot (a hand-tightened root, a
container that mounts only the release), the page shows the config's release and says why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ...errors import LicenseError, ModelInvalid
from ...services.pose import load_model  # a PaddleX bundle, or an Ultralytics export (a YOLOv8-pose deploy)


@dataclass(frozen=True)
class ModelRow:
    role: str
    bundle: str
    model: str  # the PaddleX model name the bundle's inference.yml gives
    task: str
    backend: str  # the backend this worker runs it on (/ready's "backends"), else the bundle's own format
    note: str = ""


@dataclass(frozen=True)
class ReleaseRow:
    version: str
    current: bool
    previous: bool
    installed_at: str
    activated_at: str


@dataclass(frozen=True)
class Releases:
    rows: tuple[ReleaseRow, ...]
    runtime: str  # process | docker, as state.json says; "" when unknown
    note: str = ""


@dataclass(frozen=True)
class LicenseFacts:
    state: str  # valid | invalid | none
    customer: str = ""
    license_id: str = ""
    days_left: int | None = None
    expires_at: str = ""
    licensed: int | None = None  # instances the license allows on this machine
    in_use: int | None = None  # instances running on this machine now (every deploy)
    reason: str = ""
    warnings: tuple[str, ...] = ()


def model_rows(
    models: Mapping[str, str], backends: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[ModelRow, ...]:
    rows = []
    for role, path in sorted(models.items()):
        try:
            bundle = load_model(path)
            backend = str((backends or {}).get(role, {}).get("backend") or bundle.engine)
            rows.append(ModelRow(role, bundle.name, bundle.model_name, bundle.task, backend))
        except (ModelInvalid, OSError) as exc:  # the service loaded them at start: only if changed since
            rows.append(ModelRow(role, Path(path).name, "?", "?", "?", str(exc)))
    return tuple(rows)


def _state_path(root: str, deploy: str) -> Path:
    from ...installer.layout import Root

    return Root(Path(root)).deploy(deploy).state


def releases(cfg: Any) -> Releases:
    """The kept releases, newest first, as the installer's journal lists them (read, never written)."""
    from ...installer import journal, releases as kept_releases

    alone = (ReleaseRow(cfg.release or "?", True, False, "", ""),)
    if not cfg.root:
        return Releases(alone, "", "the config names no install root: only the running release is known")
    path = _state_path(cfg.root, cfg.deploy)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    except OSError as exc:
        return Releases(
            alone,
            "",
            f"{path} cannot be read by the service ({exc.strerror or exc}); showing the release this worker runs",
        )
    except ValueError as exc:
        return Releases(alone, "", f"{path} is not valid ({exc}); showing the release this worker runs")
    journal.migrate(state)  # an older installer's schema, read in memory only
    current, previous = state.get("release"), kept_releases.previous(state)
    info = state.get("releases") or {}
    versions = list(reversed(kept_releases.kept(state)))
    if current and current not in versions:
        versions.insert(0, current)
    rows = tuple(
        ReleaseRow(
            v,
            v == current,
            v == previous,
            str((info.get(v) or {}).get("installed_at") or ""),
            str((info.get(v) or {}).get("activated_at") or ""),
        )
        for v in versions
    )
    note = ""
    if cfg.release and current and cfg.release != current:
        note = f"this worker runs {cfg.release}; state.json names {current} (an upgrade or rollback is under way)"
    return Releases(rows, str(state.get("runtime_kind") or ""), note)


def running_workers(master: int | None = None) -> list[int] | None:
    """The pids of the gunicorn master's children (this worker and its siblings), as the kernel
    lists them; None where /proc cannot tell (no such file on this kernel, another user's master)."""
    master = os.getppid() if master is None else master
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return None
    return sorted(int(pid) for pid in text.split())


def instances_in_use() -> int | None:
    from ...licensing import instances

    try:
        return instances.count()
    except (OSError, LicenseError):
        return None


def license_facts(
    ready_info: Mapping[str, Any], gated: bool, in_use: Callable[[], int | None] = instances_in_use
) -> LicenseFacts:
    """The license as ``/ready`` reports it (routes.readiness), plus the instances running now."""
    if not gated:
        return LicenseFacts("none", reason="no license directory in the config (a development service)")
    lic = ready_info.get("license") or {}
    if not lic.get("license_id"):
        return LicenseFacts(
            "invalid",
            reason=str(lic.get("reason") or "not valid"),
            warnings=(str(lic.get("detail") or ""),) if lic.get("detail") else (),
        )
    return LicenseFacts(
        "valid",
        customer=str(lic.get("customer", "")),
        license_id=str(lic.get("license_id", "")),
        days_left=lic.get("days_left"),
        expires_at=str(lic.get("expires_at", "")),
        licensed=lic.get("instances"),
        in_use=in_use(),
        warnings=tuple(lic.get("warnings") or ()),
    )
