"""Give a model bundle its ONNX rendition: inference.onnx + parity.npz + the manifest's "onnx" record.

    python3 tools/convert/onnx_rendition.py --bundle DIR [--bundle DIR ...] [--force] [--sample IMAGE]
    python3 tools/convert/onnx_rendition.py --models models          # every bundle under it (download.sh)

Run it with the build environment's Python (original/.state/buildenv/bin/python: Paddle, paddle2onnx,
onnx, ONNX Runtime, OpenVINO), on the vendor's connected machine, never on a server (docs/backends.md).
For each bundle: paddle2onnx converts the Paddle graph (no Polygraphy or onnxoptimizer pass: Polygraphy
would pip-install its own dependencies), our fixes (onnx_fixes.py) edit the graph, a batch of two
is tried against Paddle and the batch pinned to 1 where the graph cannot do more, then ONNX Runtime
and OpenVINO (f32) run it on the bundle's sample input and their agreement with Paddle is recorded.
A bundle whose rendition no runtime agrees with, or that does not convert, is marked Paddle-only:
"onnx": {"unavailable": "<why>"}. The result is cached: a bundle whose Paddle files, this tool's
version and the converter and runtime versions are unchanged is left alone (``--force`` redoes it).
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
for _p in (REPO_ROOT, REPO_ROOT / "package"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tools.convert import onnx_fixes, onnx_parity  # noqa: E402
from visionpack import bundle as layout  # noqa: E402
from visionpack.fsutil import sha256_file  # noqa: E402

TOOL = "tools/convert/onnx_rendition.py"
TOOL_VERSION = "1"  # bump whenever the rendition it writes would change for the same inputs
OPSET = 11  # paddle2onnx raises it by itself where an op needs more
CONVERTERS = ("paddle2onnx", "onnx")
OURS = (layout.ONNX_FILE, layout.PARITY_FILE)  # the files this tool writes into a bundle
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Unconvertible(Exception):
    """This bundle gets no ONNX rendition; the message is the reason recorded in the manifest."""


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def converter_versions() -> dict[str, str]:
    return {name: _version(name) for name in CONVERTERS}


def paddle_files(bundle_dir: Path) -> list[Path]:
    found = layout.files(bundle_dir)
    return [found.model_file, found.params_file, found.config_file]


def build_key(bundle_dir: Path, sample: Path | None) -> dict[str, Any]:
    """What a rendition depends on: when this is unchanged, the recorded rendition stands."""
    key: dict[str, Any] = {
        "tool": TOOL,
        "tool_version": TOOL_VERSION,
        "converter": converter_versions(),
        "runtimes": onnx_parity.runtime_versions(),
        "inputs_sha256": {p.name: sha256_file(p) for p in paddle_files(bundle_dir) if p.is_file()},
    }
    if sample is not None:
        key["sample_sha256"] = sha256_file(sample)
    return key


def up_to_date(bundle_dir: Path, key: Mapping[str, Any]) -> bool:
    manifest = layout.read_manifest(bundle_dir)
    record = manifest.get("onnx")
    if not isinstance(record, dict) or record.get("build") != key:
        return False
    declared = layout.declared_checksums(manifest)
    return all(name in declared for name in OURS if (bundle_dir / name).exists()) and not layout.damaged(
        bundle_dir, declared
    )


# -- conversion ------------------------------------------------------------------------------------
def export(bundle_dir: Path, opset: int) -> bytes:
    """paddle2onnx's graph, without its Polygraphy/onnxoptimizer pass (only a ``save_file`` gets one)."""
    graph, params, _ = paddle_files(bundle_dir)
    if graph.suffix == ".json":
        # The C++ exporter raises with the real reason; paddle2onnx.export would only log it.
        import paddle2onnx.paddle2onnx_cpp2py_export as c_p2o

        try:
            data = c_p2o.export(
                str(graph), str(params), opset, True, False, True, True, True, {}, "onnxruntime", "", "", False
            )
        except Exception as exc:
            raise Unconvertible(f"paddle2onnx {_version('paddle2onnx')} cannot convert {graph.name}: {exc}") from None
        return bytes(data)
    import paddle2onnx  # a legacy .pdmodel: its export translates it to PIR first

    try:
        return bytes(paddle2onnx.export(str(graph), str(params), None, opset_version=opset))
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise Unconvertible(f"paddle2onnx {_version('paddle2onnx')} cannot convert {graph.name} ({why})") from None


def input_specs(model: Any) -> list[onnx_parity.InputSpec]:
    from onnx import helper

    specs = []
    for value in model.graph.input:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        specs.append((value.name, shape, helper.tensor_dtype_to_np_dtype(tensor.elem_type).name))
    return specs


def _try(run: Callable[[], Any]) -> tuple[Any, str]:
    try:
        return run(), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


def choose_batch(
    bundle_dir: Path, model: Any, config: Mapping[str, Any], image: Path, task: str, tolerance: Mapping[str, float]
) -> list[str]:
    """Keep a dynamic batch only if a batch of two runs in ONNX Runtime and agrees with Paddle; else pin 1."""
    specs = input_specs(model)
    if not any(shape and shape[0] is None for _, shape, _ in specs):
        return []
    feeds = onnx_parity.sample_feeds(specs, config, image, 2)
    ref, why = _try(lambda: onnx_parity.run_paddle(bundle_dir, feeds))
    if ref is None:
        return onnx_fixes.pin_batch(model, 1, f"Paddle itself does not run a batch of 2: {why}")
    got, why = _try(lambda: onnx_parity.run_onnxruntime(model.SerializeToString(), feeds))
    if got is None:
        return onnx_fixes.pin_batch(model, 1, f"batch 2 fails in ONNX Runtime: {why}")
    measured, why = _try(lambda: onnx_parity.compare(ref, got, task))
    if measured is None:
        return onnx_fixes.pin_batch(model, 1, f"batch 2 differs from Paddle: {why}")
    if not onnx_parity.agrees(measured, tolerance):
        return onnx_fixes.pin_batch(model, 1, f"batch 2 differs from Paddle: {_summary(measured)}")
    return []


def render(
    bundle_dir: Path, opset: int, sample: Path | None, log: Callable[[str], None]
) -> tuple[bytes, bytes, dict[str, Any]]:
    """(inference.onnx bytes, parity.npz bytes, the "onnx" record without "build"); Unconvertible."""
    import onnx

    bundle = layout.load_bundle(bundle_dir)
    if layout.PADDLE not in bundle.formats:
        raise Unconvertible("no Paddle model (inference.json/.pdmodel + .pdiparams) to convert")
    task, image = bundle.task, onnx_parity.sample_image(bundle.task, sample)
    model = onnx.load_from_string(export(bundle_dir, opset))
    fixes = onnx_fixes.apply_always(model)
    fixes += choose_batch(bundle_dir, model, bundle.config, image, task, bundle.parity_tolerance)
    specs = input_specs(model)
    fixed = {shape[0] for _, shape, _ in specs if shape and shape[0] is not None}
    batch: int | str = fixed.pop() if fixed and all(s and s[0] is not None for _, s, _ in specs) else "dynamic"
    try:
        onnx.checker.check_model(model)
        feeds = onnx_parity.sample_feeds(specs, bundle.config, image, 2 if batch == "dynamic" else int(batch))
    except Exception as exc:
        raise Unconvertible(f"{type(exc).__name__}: {exc}") from None
    reference, why = _try(lambda: onnx_parity.run_paddle(bundle_dir, feeds))
    if reference is None:
        raise Unconvertible(f"Paddle does not run the bundle's sample input: {why}")
    data = model.SerializeToString()
    tolerance = bundle.parity_tolerance
    parity: dict[str, Any] = {}
    for runtime, run in onnx_parity.RUNTIMES.items():
        measured, why = _try(functools.partial(_measure, run, data, feeds, reference, task))
        parity[runtime] = measured if measured is not None else {"error": why}
        if measured is not None:
            measured["agrees"] = onnx_parity.agrees(measured, tolerance)
        log(f"{runtime}: {parity[runtime]}")
    if not any(p.get("agrees") for p in parity.values()):
        worst = "; ".join(f"{k}: {v.get('error') or _summary(v)}" for k, v in parity.items())
        raise Unconvertible(f"no runtime agrees with Paddle on the sample ({worst})")
    sample_rel = image.relative_to(REPO_ROOT).as_posix() if image.is_relative_to(REPO_ROOT) else image.name
    record = {
        "file": layout.ONNX_FILE,
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "converter": converter_versions(),
        "batch": batch,
        "fixes": fixes,
        "parity": parity,
        "sample": f"{sample_rel} (a batch of 2 adds it mirrored)" if batch == "dynamic" else sample_rel,
    }
    return data, onnx_parity.parity_npz(feeds, reference), record


def _measure(run: Callable[..., Any], data: bytes, feeds: Any, reference: Any, task: str) -> dict[str, Any]:
    return onnx_parity.compare(reference, run(data, feeds), task)


def _summary(measured: Mapping[str, Any]) -> str:
    return f"max|diff| {measured['max_abs_diff']:.3g}, cosine {measured['cosine']:.6f}, top-k {measured['topk_same']}"


# -- writing into the bundle -----------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    """Write beside the bundle, then rename in: a bundle never holds a half-written or stray file."""
    tmp = path.parent.parent / f".{path.parent.name}.{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def checked_manifest(bundle_dir: Path) -> dict[str, Any]:
    """The manifest to extend: the bundle's own (its Paddle files intact), or a new one for a raw export."""
    manifest = layout.read_manifest(bundle_dir)
    declared = {k: v for k, v in layout.declared_checksums(manifest).items() if k not in OURS}
    if manifest:
        damage = layout.damaged(bundle_dir, declared)
        if damage:
            names = ", ".join(f"{d.name} ({d.problem})" for d in damage)
            raise RuntimeError(f"{bundle_dir}: files differ from its manifest ({names}): rebuild or re-copy it first")
        return manifest
    config = layout.load_bundle(bundle_dir).config
    return {"schema": layout.MANIFEST_SCHEMA, "name": bundle_dir.name, "task": layout.infer_task(config)}


def install(bundle_dir: Path, manifest: dict[str, Any], record: dict[str, Any], outputs: Mapping[str, bytes]) -> None:
    """Put the rendition's files in (or take stale ones out) and rewrite the manifest last."""
    for name in OURS:
        if name in outputs:
            _atomic_write(bundle_dir / name, outputs[name])
        elif (bundle_dir / name).exists():
            (bundle_dir / name).unlink()
    declared = {k: v for k, v in layout.declared_checksums(manifest).items() if k not in OURS}
    if not declared:  # a raw export: the manifest we write lists every file it has
        declared = {n: s for n, s in layout.checksums(bundle_dir).items() if n != layout.MANIFEST_FILE}
    declared.update({name: sha256_file(bundle_dir / name) for name in OURS if name in outputs})
    manifest["files"] = dict(sorted(declared.items()))
    manifest["onnx"] = record
    manifest["parity_tolerance"] = layout.parity_tolerance(manifest, str(manifest.get("task", "")), str(bundle_dir))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(bundle_dir / layout.MANIFEST_FILE, text.encode("utf-8"))


def process(
    bundle_dir: Path, *, force: bool = False, opset: int = OPSET, sample: Path | None = None, log: Callable[[str], None]
) -> str:
    """One bundle: 'up to date', 'converted' or 'paddle-only: <why>'. Raises on a damaged bundle."""
    key = build_key(bundle_dir, sample)
    if not force and up_to_date(bundle_dir, key):
        return "up to date"
    manifest = checked_manifest(bundle_dir)
    started = time.monotonic()
    try:
        data, npz, record = render(bundle_dir, opset, sample, log)
    except Unconvertible as exc:
        install(bundle_dir, manifest, {"unavailable": str(exc), "build": key}, {})
        return f"paddle-only: {exc}"
    record["seconds"] = round(time.monotonic() - started, 1)
    record["build"] = key
    install(bundle_dir, manifest, record, {layout.ONNX_FILE: data, layout.PARITY_FILE: npz})
    return f"converted in {record['seconds']} s (opset {record['opset']}, batch {record['batch']})"


def bundle_dirs(models: Path) -> list[Path]:
    return sorted(
        d for d in models.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "inference.yml").exists()
    )


def _say(name: str, message: str) -> None:
    print(f"{name}:   {message}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--bundle", type=Path, action="append", help="a bundle directory (repeatable)")
    where.add_argument("--models", type=Path, help="every bundle directory under this one")
    ap.add_argument("--force", action="store_true", help="convert even when the recorded rendition is current")
    ap.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset to ask for (default {OPSET})")
    ap.add_argument("--sample", type=Path, help="sample image for the parity check (default: one of package/samples)")
    args = ap.parse_args(argv)
    dirs = args.bundle or (bundle_dirs(args.models) if args.models.is_dir() else [])
    missing = [d for d in dirs if not d.is_dir()] + ([args.models] if args.models and not args.models.is_dir() else [])
    if missing or (args.sample and not args.sample.is_file()):
        print(f"error: not found: {', '.join(map(str, missing or [args.sample]))}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    for d in dirs:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)  # one writer per bundle (build_models locks models/)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            say = functools.partial(_say, d.name)
            outcome = process(d, force=args.force, opset=args.opset, sample=args.sample, log=say)
            print(f"{d.name}: {outcome}", flush=True)
        except Exception as exc:
            print(f"error: {d.name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            failed += 1
        finally:
            os.close(fd)
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
