"""Helpers every converter uses to write a PaddleX-3-format bundle plus our manifest.json.

A bundle directory holds ``inference.json`` + ``inference.pdiparams`` (Paddle PIR export),
``inference.yml`` (PaddleX config) and ``manifest.json`` (schema 1, docs/conventions.md).
Converters write into a scratch directory; build_models.py renames it into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

__all__ = [
    "MODEL_PREFIX",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "sha256_file",
    "bundle_file_hashes",
    "save_inference_model",
    "write_yaml",
    "write_manifest",
    "read_manifest",
    "verify_bundle",
    "wheel_license",
]

MODEL_PREFIX = "inference"  # PaddleX BasePredictor.MODEL_FILE_PREFIX
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def bundle_file_hashes(out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every regular file of the bundle except the manifest itself, by relative path."""
    root = Path(out_dir)
    hashes: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            hashes[p.relative_to(root).as_posix()] = sha256_file(p)
    return hashes


def save_inference_model(layer: Any, input_specs: Sequence[Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Trace ``layer`` with paddle.jit.to_static and save it under PIR as inference.json/.pdiparams.

    ``input_specs`` are ``paddle.static.InputSpec`` objects; their ``name`` becomes the model's
    input name (PaddleX feeds classification models by position, detection ones by name).
    The layer's ``forward`` must spell its first parameter ``self``: dy2st rewrites the source
    and looks the bound instance up under that name.
    """
    import paddle  # build-time only; never imported by the runtime package

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layer.eval()
    # PIR export writes .json; the runtime prefers .json (docs/conventions.md). Paddle 3.x
    # defaults to PIR, but an environment flag could switch it off, so insist.
    if not paddle.framework.use_pir_api():
        raise RuntimeError("PIR API is off (FLAGS_enable_pir_api=0); bundles must be exported as inference.json")
    static = paddle.jit.to_static(layer, input_spec=list(input_specs), full_graph=True)
    paddle.jit.save(static, str(out / MODEL_PREFIX))
    written = [out / f"{MODEL_PREFIX}.json", out / f"{MODEL_PREFIX}.pdiparams"]
    missing = [p.name for p in written if not p.is_file()]
    if missing:
        raise RuntimeError(f"paddle.jit.save did not produce {missing} in {out}")
    return written


def write_yaml(out_dir: str | os.PathLike[str], mapping: Mapping[str, Any], name: str = "inference.yml") -> Path:
    """Dump ``mapping`` in key order (PaddleX reads it with yaml.safe_load-compatible loaders)."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_plain(mapping), sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
    path.write_text(text, encoding="utf-8")
    return path


def _plain(obj: Any) -> Any:
    """Turn tuples / numpy scalars / OrderedDicts into plain YAML-safe types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj


def write_manifest(out_dir: str | os.PathLike[str], *, name: str, task: str, paddlex_model_name: str,
                   source: Mapping[str, Any], runtime: Mapping[str, Any], build: Mapping[str, Any],
                   metrics: Mapping[str, Any] | None = None) -> Path:
    """Write manifest.json (schema 1) with the sha256 of every other file of the bundle."""
    out = Path(out_dir)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "name": name,
        "task": task,
        "paddlex_model_name": paddlex_model_name,
        "files": bundle_file_hashes(out),
        "source": _plain(dict(source)),
        "runtime": _plain(dict(runtime)),
        "build": _plain(dict(build)),
        "metrics": _plain(dict(metrics or {})),
    }
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The bundle's manifest, or None when absent or unreadable."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_bundle(out_dir: str | os.PathLike[str]) -> list[str]:
    """Problems found comparing the bundle's files with its manifest (empty list = intact)."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return ["manifest.json missing or unreadable"]
    recorded = manifest.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return ["manifest.json lists no files"]
    actual = bundle_file_hashes(out_dir)
    problems = [f"{f}: missing" for f in recorded if f not in actual]
    problems += [f"{f}: checksum mismatch" for f in recorded if f in actual and actual[f] != recorded[f]]
    problems += [f"{f}: not in manifest" for f in actual if f not in recorded]
    return problems


def wheel_license(wheel: str | os.PathLike[str]) -> str:
    """A wheel's licence: License-Expression, else the License field, else its LICENSE file's first line."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if meta_name:
            fields: dict[str, str] = {}
            for line in zf.read(meta_name).decode("utf-8", "replace").splitlines():
                if not line.strip():
                    break  # headers end at the first blank line; the long description follows
                key, sep, value = line.partition(":")
                if sep and key not in fields:
                    fields[key.strip()] = value.strip()
            for key in ("License-Expression", "License"):
                value = fields.get(key, "")
                if value and value.upper() != "UNKNOWN":
                    return value
        for n in names:
            if ".dist-info/" in n and n.rsplit("/", 1)[-1].upper().startswith(("LICENSE", "LICENCE", "COPYING")):
                for line in zf.read(n).decode("utf-8", "replace").splitlines():
                    if line.strip():
                        return line.strip()
    return "UNKNOWN"
