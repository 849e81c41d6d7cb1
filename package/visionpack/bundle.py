"""A model bundle on disk: which files it has, their checksums, its task and its formats (Paddle, ONNX).

A bundle is a PaddleX 3 export plus, optionally, our ``manifest.json`` (docs/conventions.md). This
module is the one place that knows its layout: the installer copies and checks bundles with it
(release.py, envcheck.py), the engine factory asks it for the format, the services load bundles
through it, the converters write manifests with it, and trouble_shooting/vp_diag loads this very
file by path (vp_diag/shared.py) to check a release's models with the standard library alone.
So it imports nothing but the standard library and the package's stdlib-only ``errors`` and
``fsutil``; PyYAML only inside :func:`load_bundle`, which vp_diag never calls.

A user's raw PaddleX export has no manifest and must load unchanged; then the task is inferred
from the yml's shape, the format is Paddle and oneDNN stays off (the safe default on paddle 3.3.x).
A bundle may also carry an ONNX rendition (``inference.onnx``, made at build time by
tools/convert/onnx_rendition.py, with ``parity.npz`` and the manifest's "onnx" record), or be
ONNX-only: a ``*.onnx`` plus the same ``inference.yml`` and no Paddle files (docs/backends.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelInvalid
from .fsutil import sha256_file

PREFIX = "inference"  # PaddleX BasePredictor.MODEL_FILE_PREFIX
GRAPH_FILES = (f"{PREFIX}.json", f"{PREFIX}.pdmodel")  # preference order: PIR json first, as PaddleX
PARAMS_FILE = f"{PREFIX}.pdiparams"
CONFIG_FILE = f"{PREFIX}.yml"
ONNX_FILE = f"{PREFIX}.onnx"  # the rendition our converter writes; an ONNX-only bundle may name it otherwise
PARITY_FILE = "parity.npz"  # sample inputs and Paddle's outputs on them, made at build time
EXPORT_METADATA = "metadata.yaml"  # an Ultralytics Paddle export's metadata (exported_model)
EXPORT_TAIL = 1 << 16  # bytes at the end of an ONNX file that hold Ultralytics' metadata_props
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = 1
TASKS = ("image_classification", "object_detection", "keypoint_detection", "face_detection", "face_feature")
# The format is the engine kind that runs the bundle (inference/<kind>_engine.py): the manifest's
# "engine", else Paddle. It becomes part of a module name, so nothing but a short identifier.
DEFAULT_ENGINE = "paddle"
ENGINE_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
# What a damaged file is: absent, or present with another sha256.
MISSING, MISMATCH = "missing", "mismatch"
# Formats a bundle can hold (Bundle.formats): which backend runs which is the engine factory's business.
PADDLE, ONNX = "paddle", "onnx"
# Agreement a backend must reach with Paddle's recorded outputs (parity.npz) before ``backend: auto``
# may choose it, per task, unless the manifest sets "parity_tolerance". f32 ONNX Runtime / OpenVINO
# agree within ~1e-6 here (docs/backends.md); the margin covers other CPUs' kernels, while bf16
# (~1e-2 on class scores) must not pass. Detector outputs hold pixel boxes, hence the wider bound.
PARITY_TOLERANCE: dict[str, dict[str, float]] = {
    "image_classification": {"max_abs_diff": 1e-4, "cosine_min": 0.9999},
    "face_detection": {"max_abs_diff": 1e-4, "cosine_min": 0.9999},
    "face_feature": {"max_abs_diff": 1e-3, "cosine_min": 0.9999},
    "object_detection": {"max_abs_diff": 1e-2, "cosine_min": 0.9999},
    "keypoint_detection": {"max_abs_diff": 1e-3, "cosine_min": 0.9999},
}
DEFAULT_TOLERANCE = {"max_abs_diff": 1e-4, "cosine_min": 0.9999}


@dataclass(frozen=True)
class Files:
    """Where a bundle's files are (the graph: .json preferred over .pdmodel, as PaddleX does)."""

    path: Path
    model_file: Path
    params_file: Path
    config_file: Path
    onnx_file: Path | None = None  # inference.onnx, else the one *.onnx present; None without one

    @property
    def manifest_file(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def has_paddle(self) -> bool:
        return self.model_file.exists()

    @property
    def onnx_only(self) -> bool:
        """An ONNX model and no Paddle graph: then the Paddle weights are not required either."""
        return self.onnx_file is not None and not self.has_paddle

    def missing(self) -> list[str]:
        """The required files that are absent, by name (the graph as "inference.json or inference.pdmodel")."""
        if not self.config_file.exists() and exported_model(self.path):
            return []  # its own metadata stands for inference.yml (services/pose/yolo_export.py checks it)
        if self.onnx_only:
            return [] if self.config_file.exists() else [self.config_file.name]
        out = [] if self.model_file.exists() else [" or ".join(GRAPH_FILES)]
        return out + [p.name for p in (self.params_file, self.config_file) if not p.exists()]


def exported_model(path: str | Path) -> bool:
    """Whether ``path`` holds an Ultralytics export as ``yolo export`` wrote it instead of a PaddleX bundle:
    a ``*.onnx`` whose metadata_props name its task, or a ``*_paddle_model/`` folder with its
    metadata.yaml (the folder itself or its child). Only the keypoint service serves one
    (docs/yolov8-pose.md); its metadata is read and checked there."""
    p = Path(path)
    if (p / EXPORT_METADATA).is_file() or any(c.is_dir() for c in p.glob("*_paddle_model")):
        return True
    return any(_names_task(f) for f in onnx_files(p))


def _names_task(onnx: Path) -> bool:
    # metadata_props (ModelProto field 14) follow the graph, so they end the file; an entry whose
    # key is "task" is these bytes: key field 1, length 4, "task", then the value's field 2.
    try:
        with onnx.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - EXPORT_TAIL))
            return b"\x0a\x04task\x12" in f.read()
    except OSError:
        return False


def onnx_files(path: str | Path) -> list[Path]:
    """The ``*.onnx`` files of a bundle, ``inference.onnx`` first, then by name."""
    found = sorted(p for p in Path(path).glob("*.onnx") if p.is_file())
    return sorted(found, key=lambda p: p.name != ONNX_FILE)


def files(path: str | Path) -> Files:
    path = Path(path)
    graphs = [path / name for name in GRAPH_FILES]
    model = next((g for g in graphs if g.exists()), graphs[0])
    onnx = onnx_files(path)
    return Files(path, model, path / PARAMS_FILE, path / CONFIG_FILE, onnx[0] if onnx else None)


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


def engine_kind(manifest: Mapping[str, Any], where: str, default: str = DEFAULT_ENGINE) -> str:
    """The engine kind the manifest names, else ``default`` (Paddle for a raw PaddleX export)."""
    kind = manifest.get("engine", default)
    if not isinstance(kind, str):
        raise ModelInvalid(f"{where}/{MANIFEST_FILE}: 'engine' must be a string, got {kind!r}")
    if not ENGINE_KIND.fullmatch(kind):
        raise ModelInvalid(f"{where}: engine kind must be a short lower-case identifier, got {kind!r}")
    return kind


def onnx_record(manifest: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    """The manifest's "onnx" record (``{}`` when none): {"file", "opset", "parity", ...} or {"unavailable"}."""
    record = manifest.get("onnx", {})
    if not isinstance(record, Mapping):
        raise ModelInvalid(f"{where}/{MANIFEST_FILE}: 'onnx' must be an object, got {type(record).__name__}")
    name = record.get("file")
    if name is not None and (not isinstance(name, str) or not name.endswith(".onnx") or "/" in name):
        raise ModelInvalid(f"{where}/{MANIFEST_FILE}: onnx 'file' must be a *.onnx file name, got {name!r}")
    return record


def parity_tolerance(manifest: Mapping[str, Any], task: str, where: str) -> dict[str, float]:
    """{"max_abs_diff", "cosine_min"}: the manifest's "parity_tolerance" over the task's default."""
    out = dict(PARITY_TOLERANCE.get(task, DEFAULT_TOLERANCE))
    given = manifest.get("parity_tolerance", {})
    if not isinstance(given, Mapping):
        raise ModelInvalid(f"{where}/{MANIFEST_FILE}: 'parity_tolerance' must be an object")
    for key, value in given.items():
        if key not in out:
            known = ", ".join(sorted(out))
            raise ModelInvalid(f"{where}/{MANIFEST_FILE}: parity_tolerance has unknown key {key!r} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ModelInvalid(f"{where}/{MANIFEST_FILE}: parity_tolerance {key} must be a number >= 0, got {value!r}")
        out[key] = float(value)
    return out


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its files, its PaddleX config (inference.yml) and its manifest.

    ``model_file`` is the Paddle graph, or the .onnx file of an ONNX-only bundle (whose
    ``params_file`` then does not exist); :attr:`formats` says which formats are really there.
    """

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
        """The manifest's "engine", else Paddle, else (ONNX-only) ONNX Runtime."""
        formats = self.formats
        return engine_kind(self.manifest, str(self.path), DEFAULT_ENGINE if PADDLE in formats else "onnxruntime")

    @property
    def formats(self) -> dict[str, Path]:
        """Format -> its model file, only those present: "paddle" (inference.json/.pdmodel), "onnx"."""
        out: dict[str, Path] = {}
        found = files(self.path)
        if found.has_paddle and found.params_file.exists():
            out[PADDLE] = found.model_file
        named = self.onnx_info.get("file")
        onnx = self.path / named if isinstance(named, str) else found.onnx_file
        if onnx is not None and onnx.is_file():
            out[ONNX] = onnx
        return out

    @property
    def onnx_info(self) -> Mapping[str, Any]:
        """The manifest's "onnx" record ({} when none; {"unavailable": why} for a Paddle-only bundle)."""
        return onnx_record(self.manifest, str(self.path))

    @property
    def parity(self) -> Path | None:
        """parity.npz (sample inputs and Paddle's outputs on them), when the bundle has one."""
        p = self.path / PARITY_FILE
        return p if p.is_file() else None

    @property
    def parity_tolerance(self) -> dict[str, float]:
        return parity_tolerance(self.manifest, self.task, str(self.path))

    @property
    def onednn_default(self) -> bool:
        return bool(self.manifest.get("runtime", {}).get("onednn", False))

    @property
    def model_name(self) -> str:
        return str((self.config.get("Global") or {}).get("model_name") or self.name)


def _served_onnx(path: Path, record: Mapping[str, Any]) -> Path:
    """The model of an ONNX-only bundle: the one its manifest names, inference.onnx, or the only *.onnx."""
    named = record.get("file")
    if isinstance(named, str):
        if not (path / named).is_file():
            raise ModelInvalid(f"model bundle {path} lacks {named} (its manifest's onnx file)")
        return path / named
    several = onnx_files(path)
    if several[0].name != ONNX_FILE and len(several) > 1:
        names = ", ".join(p.name for p in several)
        raise ModelInvalid(f"model bundle {path} holds several ONNX models ({names}): name the served one {ONNX_FILE}")
    return several[0]


def load_bundle(path: str | Path) -> Bundle:
    """Locate model/params/yml the way PaddleX does (or .onnx/yml) and read the yml and the manifest."""
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise ModelInvalid(f"model bundle {path} is not a directory")
    found = files(path)
    if not found.config_file.exists() and exported_model(path):
        raise ModelInvalid(
            f"model {path} is an Ultralytics export, not a PaddleX bundle: "
            "only the keypoint service serves it, as its model 'pose' (docs/yolov8-pose.md)"
        )
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
    manifest = read_manifest(path)
    model_file = found.model_file
    if found.onnx_only:
        model_file = _served_onnx(path, onnx_record(manifest, str(path)))
    bundle = Bundle(
        path=path,
        model_file=model_file,
        params_file=found.params_file,
        config=config,
        manifest=manifest,
    )
    # A malformed "onnx" or "parity_tolerance" record fails here, at load, not at first use.
    _ = (bundle.onnx_info, bundle.parity_tolerance)
    return bundle
