"""Helpers every converter uses to write a PaddleX-3-format bundle plus our manifest.json.

A bundle directory holds ``inference.json`` + ``inference.pdiparams`` (Paddle PIR export),
``inference.yml`` (PaddleX config) and ``manifest.json`` (schema 1, docs/conventions.md).
Converters write into a scratch directory; build_models.py renames it into place. The file
names, the checksums and their comparison are the package's bundle module (visionpack/bundle.py),
the one the installer and the diagnostics check bundles with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from visionpack import bundle as layout
from visionpack.fsutil import sha256_file

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
    "run_predictor",
    "check_exported_model",
]

MODEL_PREFIX = layout.PREFIX
MANIFEST_NAME = layout.MANIFEST_FILE
MANIFEST_SCHEMA = layout.MANIFEST_SCHEMA


def bundle_file_hashes(out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every regular file of the bundle except the manifest itself, by relative path."""
    return {name: digest for name, digest in layout.checksums(out_dir).items() if name != MANIFEST_NAME}


def save_inference_model(layer: Any, input_specs: Sequence[Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Trace ``layer`` with paddle.jit.to_static and save it under PIR as inference.json/.pdiparams.

    ``input_specs`` are ``paddle.static.InputSpec`` objects; their ``name`` becomes the model's
    input name (PaddleX feeds classification models by position, detection ones by name).
    The layer's ``forward`` must spell its first parameter ``self``: dy2st rewrites the source
    and looks the bound instance up under that name.
    """
    import paddle  # build-time only; never imported by the visionpack package

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


def write_manifest(
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    task: str,
    paddlex_model_name: str,
    source: Mapping[str, Any],
    runtime: Mapping[str, Any],
    build: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
) -> Path:
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
    damage = layout.damaged(out_dir, {str(f): str(sha) for f, sha in recorded.items()}, actual)
    problems = [f"{d.name}: missing" for d in damage if d.problem == layout.MISSING]
    problems += [f"{d.name}: checksum mismatch" for d in damage if d.problem == layout.MISMATCH]
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


_PREDICT_SCRIPT = r"""
import sys, numpy as np, paddle.inference as pi
model_dir, onednn, inp, outp = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
cfg = pi.Config(model_dir + "/inference.json", model_dir + "/inference.pdiparams")
cfg.disable_gpu()
if onednn:
    cfg.enable_mkldnn()
    cfg.set_mkldnn_cache_capacity(10)
else:
    cfg.disable_mkldnn()
cfg.set_cpu_math_library_num_threads(1)
cfg.enable_new_ir(True)
cfg.enable_new_executor()
cfg.set_optimization_level(3)
cfg.enable_memory_optim()
cfg.disable_glog_info()
pred = pi.create_predictor(cfg)
feeds = np.load(inp)
for name in pred.get_input_names():
    h = pred.get_input_handle(name)
    x = np.ascontiguousarray(feeds[name])
    h.reshape(x.shape)
    h.copy_from_cpu(x)
pred.run()
outs = [pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names()]
np.savez(outp, *outs)
"""


def run_predictor(
    model_dir: str | os.PathLike[str], feeds: Mapping[str, Any], *, onednn: bool, timeout: float = 600.0
) -> tuple[list[Any] | None, str]:
    """Run the bundle with Paddle Inference configured as PaddleX does, in a child process.

    A child, because the known oneDNN/PIR failure of paddle 3.3.x may abort the process.
    Returns (outputs or None, one-line detail).
    """
    import subprocess
    import sys
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="vp-predict-") as tmp:
        inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(inp, **{k: np.asarray(v) for k, v in feeds.items()})
        env = dict(os.environ, OMP_NUM_THREADS="1")
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PREDICT_SCRIPT, str(model_dir), "1" if onednn else "0", str(inp), str(outp)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f}s"
        if proc.returncode != 0 or not outp.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            return None, f"failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}"
        with np.load(outp) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))], "ran"


def check_exported_model(
    model_dir: str | os.PathLike[str], feeds: Mapping[str, Any], reference: Any, *, atol: float = 1e-5
) -> dict[str, Any]:
    """Compare the exported model's first output with ``reference``, oneDNN off and on.

    ``ok`` means the plain CPU run matches; ``onednn`` is True only if the oneDNN run also
    completes and matches (otherwise bundles must keep oneDNN off).
    """
    import numpy as np

    ref = np.asarray(reference)
    result: dict[str, Any] = {
        "ok": False,
        "max_abs_diff": None,
        "onednn": False,
        "onednn_max_abs_diff": None,
        "onednn_detail": "",
    }
    outs, detail = run_predictor(model_dir, feeds, onednn=False)
    if outs is None:
        raise RuntimeError(f"exported model does not run with Paddle Inference: {detail}")
    diff = float(np.max(np.abs(outs[0] - ref))) if outs[0].shape == ref.shape else float("inf")
    result.update(ok=diff <= atol, max_abs_diff=diff)
    outs, detail = run_predictor(model_dir, feeds, onednn=True)
    if outs is None:
        result["onednn_detail"] = detail
        return result
    d = float(np.max(np.abs(outs[0] - ref))) if outs[0].shape == ref.shape else float("inf")
    result["onednn_max_abs_diff"] = d
    result["onednn"] = d <= atol * 10  # oneDNN kernels reorder float sums; allow a little more
    result["onednn_detail"] = f"ran, max|diff|={d:.2e}" + ("" if result["onednn"] else " (too large)")
    return result
