"""One installed deploy at one of its kept releases: paths, journal state, the release's venv and timeouts.

What a runtime (runtimes/) starts, stops and switches to. A leaf module: it reads release
files only, so every runtime can take it without importing recovery or the commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layout import DeployPaths
from .release import config_from_release, read_info


def venv_of(release: Path) -> Path:
    """The runtime venv a release was built for (release.json names it)."""
    return Path(read_info(release).get("runtime") or "")


def graceful_of(release: Path) -> float:
    try:
        return float(config_from_release(release).graceful_timeout)
    except Exception:  # a damaged config must not stop us from stopping a service
        return 30.0


@dataclass(frozen=True)
class Installed:
    """A deploy at release ``at``, or at its current release (``state["release"]``) when None."""

    paths: DeployPaths
    state: dict[str, Any]
    at: str | None = None

    @property
    def version(self) -> str:
        return self.at or self.state["release"]

    @property
    def release(self) -> Path:
        return self.paths.release(self.version)

    @property
    def venv(self) -> Path:
        return venv_of(self.release)

    @property
    def host(self) -> str:
        return self.state.get("host") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.state.get("port") or 0)

    def graceful_timeout(self) -> float:
        return graceful_of(self.release)
