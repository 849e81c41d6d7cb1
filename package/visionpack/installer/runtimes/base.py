"""The runtime protocol (every verb the installer calls on a deploy's runtime) and a switch's candidate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..context import Context
from ..installed import Installed
from ..layout import DeployPaths


@dataclass
class Candidate:
    """The target release's master during a switch, serving on a private probe port."""

    version: str
    pid: int
    probe_port: int
    handed_over: bool  # shares the old master's socket (zero downtime) or bound its own


class Runtime(Protocol):
    """What install, start, stop, status, remove and the switch (upgrade, rollback, recovery) call.

    Masters are named by their host pid in both runtimes (procs.masters finds a container's
    gunicorn in the host's /proc too); ``stop_master`` and ``discard`` turn a pid or a
    version into whatever the runtime stops.
    """

    kind: str  # "process" | "docker": state.json's runtime_kind
    gpu: bool  # can run a deploy on device gpu:N (docs/gpu.md)

    # --- install, start, stop, status, remove --------------------------------------------------

    def preflight(self, ctx: Context) -> str | None:
        """Before ``install`` writes anything: raise if this runtime cannot run here; what was found."""
        ...

    def check_release(self, inst: Installed) -> None:
        """Before ``start``: raise StartFailed if ``inst``'s release cannot be started by this runtime."""
        ...

    def start(self, ctx: Context, inst: Installed, timeout: float) -> int:
        """Start ``inst`` (its port is free, its licence checked) and wait for /ready; the master's host pid."""
        ...

    def await_serving(self, inst: Installed, pid: int, timeout: float) -> None:
        """A master found running (maybe an interrupted command's, still booting): wait until it serves."""
        ...

    def stop(self, ctx: Context, inst: Installed) -> bool:
        """Stop the deploy gracefully; whether anything was running."""
        ...

    def remove(self, ctx: Context, inst: Installed) -> bool:
        """Stop the deploy and delete what this runtime made for it (not its files); whether it ran."""
        ...

    def describe(self, paths: DeployPaths, state: dict[str, Any], *, probe: bool = True) -> dict[str, Any]:
        """One deploy's status (the shape of ``status --json``)."""
        ...

    # --- the switch (switch.py) ----------------------------------------------------------------

    def serving(self, paths: DeployPaths, version: str) -> int | None:
        """Host pid of the running master of release ``version``."""
        ...

    def start_standby(
        self, ctx: Context, paths: DeployPaths, state: dict[str, Any], version: str, timeout: float
    ) -> Candidate:
        """Start ``version`` beside the serving master, public socket shared but closed to it, proven ready.

        OSError/ConnectionError: the serving master cannot hand over (the switch restarts instead).
        """
        ...

    def open_public(self, paths: DeployPaths, cand: Candidate) -> None:
        """Let the candidate's workers accept on the public socket."""
        ...

    def stop_master(self, paths: DeployPaths, pid: int, graceful: float, ctx: Context) -> None:
        """Retire the master ``pid`` (its workers finish what they accepted)."""
        ...

    def discard(self, paths: DeployPaths, version: str, ctx: Context) -> None:
        """Stop whatever runs release ``version``, the target of a switch being undone."""
        ...

    def settle(self, paths: DeployPaths, ctx: Context) -> None:
        """After a switch, once the old masters are gone: tidy what the switch left."""
        ...

    def record_started(self, paths: DeployPaths, state: dict[str, Any], version: str) -> None:
        """After a switch started the kept release ``version``: remember what it runs on."""
        ...
