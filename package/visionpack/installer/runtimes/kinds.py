"""The runtime kinds, and the one function that reads a deploy's state and returns its runtime.

``state["runtime_kind"]`` ("process" | "docker" | "systemd") is written by ``install --runtime``; a state
without it (installed before docker deploys existed) runs as processes. Adding a kind is a
module beside process.py and docker.py and one entry in ``KINDS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from .base import Runtime
from .docker import DockerRuntime
from .process import ProcessRuntime
from .systemd_unit import SystemdRuntime

DEFAULT = "process"
# Each kind's runtime, given the package whose image or files a new release runs on.
KINDS: dict[str, Callable[[Path | None], Runtime]] = {
    "process": lambda _top: ProcessRuntime(),
    "docker": lambda top: DockerRuntime(top),
    "systemd": lambda _top: SystemdRuntime(),  # install --systemd
}


def kind_of(state: Mapping[str, Any] | None) -> str:
    return str((state or {}).get("runtime_kind") or DEFAULT)


def runtime_for(state: Mapping[str, Any] | None, top: Path | None = None, *, kind: str | None = None) -> Runtime:
    """The runtime of the deploy whose state is ``state`` (or of ``kind``, for an install).

    ``top``: the package a switch starts the new release from (upgrade: the new package). A
    kind this installer does not know (a hand-edited state.json) runs as processes, as it
    always has.
    """
    make = KINDS.get(kind or kind_of(state)) or KINDS[DEFAULT]
    return make(top)
