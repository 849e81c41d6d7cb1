"""A model bundle on disk: a PaddleX 3 export plus (optionally) our manifest.

A user's raw PaddleX export has no manifest and must load unchanged; then the task is
inferred from the yml's shape and oneDNN stays off (the safe default on paddle 3.3.x).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelInvalid, PackageCorrupt

MODEL_PREFIX = "inference"


@dataclass(frozen=True)
class Bundle:
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
    def onednn_default(self) -> bool:
        return bool(self.manifest.get("runtime", {}).get("onednn", False))

    @property
    def model_name(self) -> str:
        return str((self.config.get("Global") or {}).get("model_name") or self.name)


def infer_task(config: dict[str, Any]) -> str:
    post = config.get("PostProcess") or {}
    if "PreProcess" in config and isinstance(post, dict) and "Topk" in post:
        return "image_classification"
    if "PreProcess" in config and isinstance(post, dict) and "NormalizeFeatures" in post:
        return "face_feature"
    if isinstance(config.get("Preprocess"), list):
        kinds = {op.get("type") for op in config["Preprocess"] if isinstance(op, dict)}
        return "keypoint_detection" if "TopDownEvalAffine" in kinds else "object_detection"
    return "unknown"


def load_bundle(path: str | Path) -> Bundle:
    """Locate model/params/yml the way PaddleX does (.json preferred over .pdmodel)."""
    import yaml

    path = Path(path)
    if not path.is_dir():
        raise ModelInvalid(f"model bundle {path} is not a directory")
    model_file = path / f"{MODEL_PREFIX}.json"
    if not model_file.exists():
        model_file = path / f"{MODEL_PREFIX}.pdmodel"
    params_file = path / f"{MODEL_PREFIX}.pdiparams"
    yml = path / f"{MODEL_PREFIX}.yml"
    missing = [p.name for p in (model_file, params_file, yml) if not p.exists()]
    if missing:
        raise ModelInvalid(f"model bundle {path} lacks {', '.join(missing)}")
    try:
        config = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelInvalid(f"{yml}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ModelInvalid(f"{yml}: top level must be a mapping")
    manifest: dict[str, Any] = {}
    mf = path / "manifest.json"
    if mf.exists():
        try:
            manifest = json.loads(mf.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelInvalid(f"{mf}: not valid JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise ModelInvalid(f"{mf}: top level must be an object")
    return Bundle(path=path, model_file=model_file, params_file=params_file, config=config, manifest=manifest)


def checksum_problems(bundle: Bundle) -> list[str]:
    """Files whose sha256 differs from the manifest (empty without a manifest)."""
    from ..fsutil import sha256_file

    problems = []
    for rel, digest in (bundle.manifest.get("files") or {}).items():
        f = bundle.path / rel
        if not f.exists():
            problems.append(f"{f}: missing")
        elif sha256_file(f) != digest:
            problems.append(f"{f}: checksum mismatch")
    return problems


def verify_bundle(bundle: Bundle) -> None:
    problems = checksum_problems(bundle)
    if problems:
        raise PackageCorrupt("; ".join(problems))
