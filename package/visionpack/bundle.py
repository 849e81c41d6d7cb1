"""A model bundle on disk: which files it has, their checksums, its task and its format (engine kind).

A bundle is a PaddleX 3 export plus, optionally, our ``manifest.json`` (docs/conventions.md). This
module is the one place that knows its layout: the installer copies and checks bundles with it
(release.py, envcheck.py), the engine factory asks it for the format, the services load bundles
through it, the converters write manifests with it, and trouble_shooting/vp_diag loads this very
file by path (vp_diag/shared.py) to check a release's models with the standard library alone.
So it imports nothing but the standard library and the package's stdlib-only ``errors`` and
``fsutil``; PyYAML only inside :func:`load_bundle`, which vp_diag never calls.

A user's raw PaddleX export has no manifest and must load unchanged; then the task is inferred
from the yml's shape, the format is Paddle and oneDNN stays off (the safe default on paddle 3.3.x).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ModelInvalid
from .fsutil import sha256_file

PREFIX = "inference"  # PaddleX BasePredictor.MODEL_FILE_PREFIX
GRAPH_FILES = (f"{PREFIX}.json", f"{PREFIX}.pdmodel")  # preference order: PIR json first, as PaddleX
PARAMS_FILE = f"{PREFIX}.pdiparams"
CONFIG_FILE = f"{PREFIX}.yml"
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = 1
TASKS = ("image_classification", "object_detection", "keypoint_detection", "face_detection", "face_feature")
# The format is the engine kind that runs the bundle (inference/<kind>_engine.py): the manifest's
# "engine", else Paddle. It becomes part of a module name, so nothing but a short identifier.
DEFAULT_ENGINE = "paddle"
ENGINE_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
# What a damaged file is: absent, or present with another sha256.
MISSING, MISMATCH = "missing", "mismatch"


@dataclass(frozen=True)
class Files:
    """Where a bundle's files are (the graph: .json preferred over .pdmodel, as PaddleX does)."""

    path: Path
    model_file: Path
    params_file: Path
    config_file: Path

    @property
    def manifest_file(self) -> Path:
        return self.path / MANIFEST_FILE

    def missing(self) -> list[str]:
        """The required files that are absent, by name (the graph as "inference.json or inference.pdmodel")."""
        out = [] if self.model_file.exists() else [" or ".join(GRAPH_FILES)]
        return out + [p.name for p in (self.params_file, self.config_file) if not p.exists()]


def files(path: str | Path) -> Files:
    path = Path(path)
    graphs = [path / name for name in GRAPH_FILES]
    model = next((g for g in graphs if g.exists()), graphs[0])
    return Files(path, model, path / PARAMS_FILE, path / CONFIG_FILE)


@dataclass(frozen=True)
class Damage:
    """One file that does not match its expected sha256."""

    name: str  # path relative to the bundle, as the manifest names it
    problem: str  # MISSING | MISMATCH
    actual: str = ""  # the sha256 found (MISMATCH)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The bundle's manifest, ``{}`` without one; ModelInvalid when it is not a JSON object."""
    mf = Path(path) / MANIFEST_FILE
    try:
        text = mf.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelInvalid(f"{mf}: cannot read it: {exc}") from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ModelInvalid(f"{mf}: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ModelInvalid(f"{mf}: top level must be an object")
    return manifest


def declared_checksums(manifest: Mapping[str, Any]) -> dict[str, str]:
    """file -> sha256 the manifest declares (``{}`` when it declares none)."""
    declared = manifest.get("files")
    if not isinstance(declared, Mapping):
        return {}
    return {str(name): str(digest).lower() for name, digest in declared.items()}


def checksums(path: str | Path) -> dict[str, str]:
    """sha256 of every regular file of the bundle (the manifest included), by relative path."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def damaged(path: str | Path, expected: Mapping[str, str], actual: Mapping[str, str] | None = None) -> list[Damage]:
    """Files of ``expected`` (name -> sha256) that are absent or differ, by name.

    ``actual``: sums already computed (:func:`checksums`), so a caller that records them hashes once.
    """
    root, out = Path(path), []
    for name, digest in sorted(expected.items()):
        f = root / name
        if actual is not None:
            have = actual.get(name)
        else:
            have = sha256_file(f) if f.is_file() else None
        if have is None:
            out.append(Damage(name, MISSING))
        elif have.lower() != str(digest).lower():
            out.append(Damage(name, MISMATCH, have))
    return out


def infer_task(config: Mapping[str, Any]) -> str:
    """The task of a raw PaddleX export, from its yml's shape."""
    post = config.get("PostProcess") or {}
    if "PreProcess" in config and isinstance(post, dict) and "Topk" in post:
        return "image_classification"
    if "PreProcess" in config and isinstance(post, dict) and "NormalizeFeatures" in post:
        return "face_feature"
    pre = config.get("Preprocess")
    if isinstance(pre, list):
        kinds = {op.get("type") for op in pre if isinstance(op, dict)}
        return "keypoint_detection" if "TopDownEvalAffine" in kinds else "object_detection"
    return "unknown"


def engine_kind(manifest: Mapping[str, Any], where: str) -> str:
    """The bundle's format: the engine kind its manifest names, else Paddle (a raw PaddleX export)."""
    kind = manifest.get("engine", DEFAULT_ENGINE)
    if not isinstance(kind, str):
        raise ModelInvalid(f"{where}/{MANIFEST_FILE}: 'engine' must be a string, got {kind!r}")
    if not ENGINE_KIND.fullmatch(kind):
        raise ModelInvalid(f"{where}: engine kind must be a short lower-case identifier, got {kind!r}")
    return kind


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its files, its PaddleX config (inference.yml) and its manifest."""

    path: Path
    model_file: Path
    params_file: Path
    config: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.path.name)

    @property
    def task(self) -> str:
        return str(self.manifest.get("task") or infer_task(self.config))

    @property
    def engine(self) -> str:
        return engine_kind(self.manifest, str(self.path))

    @property
    def onednn_default(self) -> bool:
        return bool(self.manifest.get("runtime", {}).get("onednn", False))

    @property
    def model_name(self) -> str:
        return str((self.config.get("Global") or {}).get("model_name") or self.name)


def load_bundle(path: str | Path) -> Bundle:
    """Locate model/params/yml the way PaddleX does and read the yml and the manifest."""
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise ModelInvalid(f"model bundle {path} is not a directory")
    found = files(path)
    missing = found.missing()
    if missing:
        raise ModelInvalid(f"model bundle {path} lacks {', '.join(missing)}")
    yml = found.config_file
    try:
        config = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelInvalid(f"{yml}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ModelInvalid(f"{yml}: top level must be a mapping")
    return Bundle(
        path=path,
        model_file=found.model_file,
        params_file=found.params_file,
        config=config,
        manifest=read_manifest(path),
    )
