"""Build one release directory: code, models, config.yml, start scripts, release.json."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .. import bundle as bundles
from ..errors import ModelInvalid, PackageCorrupt
from ..fsutil import atomic_write
from . import yamlload
from .journal import now
from .layout import DeployPaths, Root
from .source import CatalogEntry, Source

START_TEMPLATE = "start-N.sh.in"
GUNICORN_CONF = "gunicorn_conf.py"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def service_config(
    root: Root,
    paths: DeployPaths,
    entry: CatalogEntry,
    release: Path,
    *,
    host: str,
    port: int,
    workers: int,
    gallery: dict[str, str] | None = None,
    device: str = "cpu",
) -> Any:
    """The validated ServiceConfig for one release (raises ConfigInvalid on a bad value).

    ``gallery``: the deploy's gallery store (``install --gallery-store``, kept in state.json so
    every later release gets it); None keeps the default, SQLite in the data directory.
    ``device``: ``install --device`` (cpu | gpu:N, docs/gpu.md), kept in state.json likewise."""
    from .. import config

    models = {role: str(release / "models" / bundle) for role, bundle in sorted(entry.models.items())}
    extra: dict[str, Any] = {"gallery": dict(gallery)} if gallery else {}
    return config.from_mapping(
        {
            **extra,
            "deploy": paths.name,
            "service": entry.service,
            "host": host,
            "port": port,
            "workers": workers,
            "device": device,
            "models": models,
            "options": dict(entry.options),
            "release": str(release),
            "root": str(root.path),
            "log_dir": str(paths.logs),
            "run_dir": str(paths.release_run(release.name)),
            "data_dir": str(paths.data),
            "license_dir": str(root.licenses),
        },
        source="install options",
    )


def build(
    root: Root, paths: DeployPaths, source: Source, entry: CatalogEntry, version: str, cfg: Any, runtime: Path
) -> Path:
    """Create releases/<version>; the caller journals it so a crash here is undone next run."""
    from .. import config

    release = paths.release(version)
    release.mkdir(parents=True)
    pkg = release / "package"
    pkg.mkdir()
    shutil.copytree(source.visionpack_dir, pkg / "visionpack", ignore=_IGNORE)
    for name in (source.catalog_file, source.version_file):
        shutil.copy2(name, pkg / name.name)
    if source.samples.is_dir():
        # The sample images prove a new release healthy before traffic is switched to it.
        shutil.copytree(source.samples, pkg / "samples", ignore=_IGNORE)
    checksums = {
        bundle: _copy_bundle(source, bundle, release / "models" / bundle)
        for bundle in sorted(set(entry.models.values()))
    }
    atomic_write(release / "config.yml", config.dump(cfg))
    _render_start(source, release, paths, runtime, version)
    info = {
        "schema": 1,
        "deploy": paths.name,
        "service": entry.service,
        "version": version,
        "runtime": str(runtime),
        "installed_at": now(),
        "installer_python": sys.version.split()[0],
        "models": checksums,
    }
    atomic_write(release / "release.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return release


def _copy_bundle(source: Source, bundle: str, dest: Path) -> dict[str, str]:
    """Copy a model bundle and return sha256 per file, checked against manifest.json if present."""
    src = source.bundle_dir(bundle)
    if not src.is_dir():
        raise ModelInvalid(f"model bundle {src} is missing")
    shutil.copytree(src, dest, ignore=_IGNORE)
    sums = bundles.checksums(dest)
    damage = bundles.damaged(dest, bundles.declared_checksums(bundles.read_manifest(dest)), sums)
    if damage:
        bad = damage[0]
        found = bad.problem if bad.problem == bundles.MISSING else f"sha256 {bad.actual[:12]}…"
        raise ModelInvalid(f"{src}/{bad.name} does not match its manifest checksum ({found})")
    return sums


def render(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("@@" + key + "@@", value)
    if "@@" in template:
        raise PackageCorrupt("start template has an unknown @@PLACEHOLDER@@")
    return template


def _render_start(source: Source, release: Path, paths: DeployPaths, runtime: Path, version: str) -> None:
    tpl_dir = source.start_templates
    try:
        template = (tpl_dir / START_TEMPLATE).read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageCorrupt(f"cannot read start template: {exc}") from None
    if not (tpl_dir / GUNICORN_CONF).is_file():
        raise PackageCorrupt(f"{tpl_dir / GUNICORN_CONF} is missing")
    start = release / "start"
    start.mkdir()
    shutil.copy2(tpl_dir / GUNICORN_CONF, start / GUNICORN_CONF)
    script = render(
        template,
        {
            "N": "1",
            "DEPLOY": paths.name,
            "VERSION": version,
            "RELEASE": str(release),
            "VENV": str(runtime),
            "DEPLOY_DIR": str(paths.dir),
        },
    )
    atomic_write(start / "start-1.sh", script, mode=0o755)


def copy_licenses(root: Root, source: Source) -> list[str]:
    """Vendor public keys always; the package's license.lic only if the root has none yet."""
    copied: list[str] = []
    if not source.licenses.is_dir():
        return copied
    root.licenses.mkdir(parents=True, exist_ok=True)
    for pub in sorted(source.licenses.glob("*.pub")):
        atomic_write(root.licenses / pub.name, pub.read_bytes(), mode=0o640)
        copied.append(pub.name)
    lic = source.licenses / "license.lic"
    # Never overwrite: the root's license may be newer ('lu'); replacing it is lu's job.
    if lic.is_file() and not (root.licenses / "license.lic").exists():
        atomic_write(root.licenses / "license.lic", lic.read_bytes(), mode=0o640)  # filemodes: root:<service group>
        copied.append("license.lic")
    return copied


def read_info(release: Path) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads((release / "release.json").read_text(encoding="utf-8"))
        return info
    except (OSError, ValueError):
        return {}


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def yaml_ready(source: Source) -> None:
    yamlload.use_wheelhouse(source.wheels)
    yamlload.ensure_importable()


def config_from_release(release: Path) -> Any:
    from .. import config

    return config.load(release / "config.yml", env={})
