"""Paths of the install root; the one place that knows where things live.

Layout (see docs/operator-guide.md)::

    <ROOT>/.runtime/<lock-sha256[:16]>/     venv shared by every release built from the same lock
    <ROOT>/licenses/                       license.lic (+ .prev), vendor public key(s)
    <ROOT>/<DEPLOY>/releases/<version>/    package/, models/, config.yml, start/, release.json
    <ROOT>/<DEPLOY>/current -> releases/<version>
    <ROOT>/<DEPLOY>/data/ logs/ run/       survive upgrade, rollback and (data/) remove
    <ROOT>/<DEPLOY>/state.json             journal
    <ROOT>/<DEPLOY>/.lock                  flock serialising installer runs on this deploy
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import settings

DEFAULT_ROOT = "/opt/visionpack"
VENVS_DIR = ".runtime"  # the runtime venvs (venvs.py); the name predates the module's
LICENSES_DIR = "licenses"
# Names under <ROOT> that are never deploys.
RESERVED = {VENVS_DIR, LICENSES_DIR}


def resolve_root(arg: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``--root`` beats ``$VISIONPACK_ROOT`` beats /opt/visionpack; always absolute."""
    raw = arg or settings.root(env) or DEFAULT_ROOT
    # abspath, not resolve(): a root that is itself a symlink keeps the name the operator gave.
    return Path(os.path.abspath(os.path.expanduser(raw)))


@dataclass(frozen=True)
class Root:
    path: Path

    @property
    def venv_base(self) -> Path:
        return self.path / VENVS_DIR

    def venv(self, key: str) -> Path:
        return self.venv_base / key

    @property
    def venv_log(self) -> Path:
        return self.venv_base / "install.log"

    @property
    def licenses(self) -> Path:
        return self.path / LICENSES_DIR

    def deploy(self, name: str) -> DeployPaths:
        return DeployPaths(self, name)

    def deploy_names(self) -> list[str]:
        """Directories that hold a deploy journal, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in RESERVED and not p.name.startswith(".") and (p / "state.json").is_file()
        )


@dataclass(frozen=True)
class DeployPaths:
    root: Root
    name: str

    @property
    def dir(self) -> Path:
        return self.root.path / self.name

    @property
    def releases(self) -> Path:
        return self.dir / "releases"

    def release(self, version: str) -> Path:
        return self.releases / version

    @property
    def current(self) -> Path:
        return self.dir / "current"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def run(self) -> Path:
        return self.dir / "run"

    @property
    def state(self) -> Path:
        return self.dir / "state.json"

    @property
    def lock(self) -> Path:
        return self.dir / ".lock"

    @property
    def pidfile(self) -> Path:
        """The serving master's pid file: a symlink to ``run/<version>/gunicorn.pid``.

        Kept for readers of the one-pid-file contract (status, trouble_shooting); each
        master writes its own release's file, so two releases can run side by side.
        """
        return self.run / "gunicorn.pid"

    def release_run(self, version: str) -> Path:
        return self.run / version

    def release_pidfile(self, version: str) -> Path:
        return self.release_run(version) / "gunicorn.pid"

    def public_flag(self, version: str) -> Path:
        """Exists once the release's master may accept on the public socket (handover)."""
        return self.release_run(version) / "serve-public"

    @property
    def error_log(self) -> Path:
        return self.logs / "error.log"

    @property
    def access_log(self) -> Path:
        return self.logs / "access.log"

    @property
    def console_log(self) -> Path:
        # gunicorn's own stdout/stderr before its errorlog is configured (import errors, bad config).
        return self.logs / "gunicorn.out"

    @property
    def proc_name(self) -> str:
        return f"visionpack:{self.name}"


def release_files(release_dir: Path) -> dict[str, Path]:
    """Files inside one release, by role."""
    return {
        "package": release_dir / "package",
        "models": release_dir / "models",
        "config": release_dir / "config.yml",
        "start_script": release_dir / "start" / "start-1.sh",
        "gunicorn_conf": release_dir / "start" / "gunicorn_conf.py",
        "release_json": release_dir / "release.json",
    }
