"""The package tree install.py runs from: its version, catalog, wheelhouse and models."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PackageCorrupt, UnknownDeploy
from . import yamlload

# One lock per CPython, named as tools/download/lockfile.py names them: original/requirements.lock
# for 3.11, original/requirements-cp<XY>.lock for the others. original/wheelhouse.json says which
# of them download.sh filled the wheelhouse for (absent: a package from before, 3.11 only).
DEFAULT_PYTHON = (3, 11)
SUPPORTED_PYTHONS = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13))


@dataclass(frozen=True)
class CatalogEntry:
    deploy: str
    service: str
    port: int
    description: str
    models: dict[str, Any]  # role -> bundle directory name under models/
    # Service settings the vendor ships with the deploy (thresholds, index type, ...); the
    # service validates them at start (config 'options').
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deploy": self.deploy,
            "service": self.service,
            "port": self.port,
            "description": self.description,
            "models": dict(self.models),
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class Source:
    """``top`` is the directory holding package/, original/, models/, start/, licenses/."""

    top: Path

    @classmethod
    def from_package_dir(cls, package_dir: Path) -> Source:
        return cls(Path(package_dir).resolve().parent)

    @property
    def package_dir(self) -> Path:
        return self.top / "package"

    @property
    def visionpack_dir(self) -> Path:
        return self.package_dir / "visionpack"

    @property
    def catalog_file(self) -> Path:
        return self.package_dir / "catalog.yml"

    @property
    def version_file(self) -> Path:
        return self.package_dir / "VERSION"

    @property
    def samples(self) -> Path:
        return self.package_dir / "samples"

    @property
    def wheels(self) -> Path:
        return self.top / "original" / "wheels"

    @property
    def lock_file(self) -> Path:
        """The lock of the Python running the installer (the runtime is built with that X.Y)."""
        return self.lock_for(sys.version_info[:2])

    def lock_for(self, version: tuple[int, ...]) -> Path:
        major, minor = version[0], version[1]
        if (major, minor) == DEFAULT_PYTHON:
            # A variant the package was built with (download.sh --gpu cu12) replaces the plain lock:
            # its closure is the same with the variant's wheels swapped in.
            for option in self._record().get("options") or []:
                variant = self.top / "original" / f"requirements-{option}.lock"
                if variant.is_file():
                    return variant
            return self.top / "original" / "requirements.lock"
        return self.top / "original" / f"requirements-cp{major}{minor}.lock"

    def pythons(self) -> list[tuple[int, int]]:
        """The CPythons this package's wheelhouse was built for, oldest first."""
        try:
            found = {(int(a), int(b)) for a, b in (str(v).split(".", 1) for v in self._record()["pythons"])}
        except (KeyError, TypeError, ValueError):
            raise PackageCorrupt("original/wheelhouse.json has no 'pythons' list of X.Y versions") from None
        return sorted(found)

    def _record(self) -> dict[str, Any]:
        """original/wheelhouse.json; a package from before it holds the 3.11 wheelhouse only."""
        try:
            data = json.loads((self.top / "original" / "wheelhouse.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"pythons": ["3.11"], "options": []}
        except (OSError, ValueError) as exc:
            raise PackageCorrupt(f"original/wheelhouse.json is unreadable: {exc}") from None
        if not isinstance(data, dict):
            raise PackageCorrupt("original/wheelhouse.json is not a JSON object")
        return data

    @property
    def models(self) -> Path:
        return self.top / "models"

    @property
    def start_templates(self) -> Path:
        return self.top / "start"

    @property
    def licenses(self) -> Path:
        return self.top / "licenses"

    @property
    def verifier(self) -> Path:
        return self.top / "tools" / "download" / "verify.py"

    def version(self) -> str:
        try:
            text = self.version_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PackageCorrupt(f"cannot read {self.version_file}: {exc}") from None
        if not text or "/" in text or text.startswith("."):
            raise PackageCorrupt(f"{self.version_file} does not hold a version (got {text!r})")
        return text

    def lock_key(self) -> str:
        """Runtime venvs are shared by every release whose lock file is byte-identical."""
        try:
            data = self.lock_file.read_bytes()
        except OSError:
            raise PackageCorrupt(
                f"{self.lock_file} is missing; run 'bash download.sh' on a connected machine"
            ) from None
        return hashlib.sha256(data).hexdigest()[:16]

    def catalog(self) -> dict[str, CatalogEntry]:
        try:
            raw = yamlload.safe_load(self.catalog_file.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise PackageCorrupt(f"cannot read {self.catalog_file}: {exc}") from None
        except ValueError as exc:
            raise PackageCorrupt(f"{self.catalog_file} is not valid YAML: {exc}") from None
        deploys = raw.get("deploys") if isinstance(raw, dict) else None
        if not isinstance(deploys, dict):
            raise PackageCorrupt(f"{self.catalog_file} has no 'deploys' mapping")
        out = {}
        for name, item in deploys.items():
            if not isinstance(item, dict):
                raise PackageCorrupt(f"{self.catalog_file}: entry {name!r} is not a mapping")
            try:
                out[str(name)] = CatalogEntry(
                    deploy=str(name),
                    service=str(item["service"]),
                    port=int(item["port"]),
                    description=str(item.get("description", "")),
                    models=dict(item.get("models") or {}),
                    options=dict(item.get("options") or {}),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise PackageCorrupt(f"{self.catalog_file}: entry {name!r} is incomplete ({exc})") from None
        return out

    def entry(self, deploy: str) -> CatalogEntry:
        catalog = self.catalog()
        if deploy not in catalog:
            offered = ", ".join(sorted(catalog)) or "nothing"
            raise UnknownDeploy(f"this package has no deploy named {deploy!r} (it offers: {offered})")
        return catalog[deploy]

    def bundle_dir(self, bundle: str) -> Path:
        return self.models / bundle

    def find_verifier(self) -> Path | None:
        return self.verifier if self.verifier.is_file() else None
