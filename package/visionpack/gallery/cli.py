"""``python3 -m visionpack.gallery``: build a gallery from a PaddleX-layout directory, back it up, list it.

    python3 -m visionpack.gallery --config DEPLOY/config.yml build DIR [--index KEY] [--list FILE]
    python3 -m visionpack.gallery --data-dir DIR export FILE
    python3 -m visionpack.gallery --data-dir DIR import FILE [--replace]
    python3 -m visionpack.gallery --data-dir DIR list [--index KEY]
    python3 -m visionpack.gallery --data-dir DIR delete KEY

``build`` reads PaddleX's layout: ``DIR/gallery.txt`` with one ``path label`` per line (path
relative to DIR, label = the rest of the line), or, without that file, ``DIR/images/<label>/*``.
Every line is checked before anything is written; bad lines are listed with their numbers and
nothing is added. Faces are detected and aligned as the service does (the whole image when no
face is found, like PaddleX) and committed in batches, so a running service sees them as they
arrive; at the end the search index is built once with every core (and snapshotted when
large, so service workers load it rather than build it). ``build`` needs the models
(``--config``: the deploy's config.yml, or $VISIONPACK_CONFIG); the other commands only the
data directory, and the config when there is one (it names the gallery's store; without one
the store is SQLite in the data directory). ``delete`` removes an index key with its faces, crops, vectors and search
snapshots in one transaction (the running service's workers notice at their next request); the
default index is emptied instead. Exit codes: 0 ok, 2 bad input (a usage error or an invalid
argument), 1 other failures; every error is a VisionpackError, reported with its slug and hint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as config_mod
from ..errors import UsageError, VisionpackError
from . import DEFAULT_INDEX, Gallery, GalleryConfig, GalleryStore, IndexParams, cache_dir, open_store

if TYPE_CHECKING:
    from ..inference.engine import EngineFactory

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
BATCH = 32


def read_layout(root: Path, list_file: Path | None = None) -> list[tuple[Path, str]]:
    """(image path, label) pairs; raises UsageError listing every bad line."""
    from ..imaging import sniff

    root = root.resolve()
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    list_file = list_file or (root / "gallery.txt")
    items: list[tuple[int, str, str]] = []
    if list_file.exists():
        for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.split(maxsplit=1)
            items.append((n, parts[0], parts[1].strip() if len(parts) == 2 else ""))
        where = list_file.name
    else:
        images = root / "images"
        if not images.is_dir():
            raise UsageError(f"{root} has neither gallery.txt nor images/<label>/ folders")
        for d in sorted(p for p in images.iterdir() if p.is_dir()):
            for f in sorted(d.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    items.append((0, str(f.relative_to(root)), d.name))
        where = "images/"
    problems, out = [], []
    for n, rel, label in items:
        at = f"{where}:{n}" if n else rel
        path = (root / rel).resolve()
        if not label:
            problems.append(f"{at}: expected 'path label', got {rel!r} without a label")
        elif not path.is_relative_to(root):
            problems.append(f"{at}: {rel} is outside {root}")
        elif not path.is_file():
            problems.append(f"{at}: {rel} does not exist")
        else:
            try:
                with open(path, "rb") as fh:
                    sniff(fh.read(64 * 1024))
            except VisionpackError as exc:
                problems.append(f"{at}: {rel}: {exc.detail}")
                continue
            out.append((path, label))
    if problems:
        raise UsageError("\n".join(problems))
    if not out:
        raise UsageError(f"no images listed in {root}")
    return out


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Paddle's C++ side prints to fd 1; keep stdout for our one JSON line (scripts parse it)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_build(args: argparse.Namespace) -> int:
    with stdout_to_stderr():
        summary = _build(args)
    print(json.dumps(summary))
    return 0 if summary["skipped"] == 0 else 1


def _build(args: argparse.Namespace) -> dict[str, Any]:
    from ..imaging import decode
    from ..services.face import FaceService

    items = read_layout(Path(args.dir), Path(args.list) if args.list else None)
    cfg = config_mod.load(args.config)
    if args.data_dir:
        import dataclasses

        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    svc = FaceService(cfg, engine_factory())
    svc.migrate()
    svc.gallery.ensure(args.index)
    total, added, no_face, started = len(items), 0, 0, time.monotonic()
    log(f"building index {args.index!r} from {total} images")
    for i in range(0, total, BATCH):
        pairs = []
        for path, label in items[i : i + BATCH]:
            try:
                pairs.append((decode(path.read_bytes(), svc.limits), label))
            except VisionpackError as exc:
                log(f"skip {path}: {exc.detail}")
        if pairs:
            faces, found = svc.new_faces(pairs)
            added += len(svc.gallery.add(args.index, faces))
            no_face += sum(f is None for f in found)
        done = min(i + BATCH, total)
        rate = done / max(1e-6, time.monotonic() - started)
        log(f"[{done}/{total}] {100 * done // total}%  {rate:.1f} img/s  eta {(total - done) / rate:.0f}s")
    # Build the faiss index here, with every core, so a large one is snapshotted for the
    # service's workers (they load it instead of building it in a request).
    from .index import faiss_module

    faiss_module().omp_set_num_threads(os.cpu_count() or 1)
    t0 = time.monotonic()
    size = len(svc.gallery.fresh(args.index))
    log(f"search index of {size} vectors ready in {time.monotonic() - t0:.1f}s")
    return {"index": args.index, "added": added, "skipped": total - added, "whole_image_no_face": no_face}


def engine_factory() -> EngineFactory:
    """The engines the bundles name (a seam: tests put fakes here)."""
    from ..inference.engine import create_engine

    return create_engine


def _where(args: argparse.Namespace) -> tuple[GalleryConfig, str]:
    """The deploy's gallery store settings and data directory (``--data-dir`` wins over the
    config's). The config is read whenever there is one: it names the store, and opening
    SQLite in the data directory of a deploy whose gallery lives elsewhere would answer from
    an empty gallery."""
    settings, data_dir = GalleryConfig(), args.data_dir
    if args.config or not data_dir:  # no file: the defaults and $VISIONPACK_* (DATA_DIR)
        cfg = config_mod.load(args.config)
        settings, data_dir = cfg.gallery, data_dir or cfg.data_dir
    if not data_dir:
        raise UsageError("give --data-dir or a --config whose data_dir is set")
    return settings, data_dir


def _store(args: argparse.Namespace) -> GalleryStore:
    return open_store(*_where(args))


def cmd_delete(args: argparse.Namespace) -> int:
    settings, data_dir = _where(args)
    # No model is needed to delete: the Gallery only drops rows and the snapshot files.
    gallery = Gallery(open_store(settings, data_dir), IndexParams(), "", 0, cache_dir(data_dir))
    faces = gallery.delete(args.key)
    print(json.dumps({"deleted": args.key, "faces": faces, "emptied_only": args.key == DEFAULT_INDEX}))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    store.export(args.file)
    print(json.dumps({"file": str(args.file), "indexes": store.stats()}, default=str))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    print(json.dumps({"imported": _store(args).import_file(args.file, replace=args.replace)}))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.index:
        total, page = store.list_faces(args.index, None, 0, 1_000_000)
        for p in page:
            print(f"{p['id']}\t{p['label']}")
        log(f"{total} faces in {args.index!r}")
    else:
        for s in store.stats():
            print(f"{s['key']}\t{s['faces']} faces\t{s['labels']} labels")
    return 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python3 -m visionpack.gallery", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=config_mod.config_path(), help="the deploy's config.yml")
    ap.add_argument("--data-dir", help="override the config's data_dir")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="add a PaddleX-layout directory to an index")
    b.add_argument("dir")
    b.add_argument("--index", default=DEFAULT_INDEX)
    b.add_argument("--list", help="list file (default DIR/gallery.txt)")
    b.set_defaults(func=cmd_build)
    e = sub.add_parser("export", help="write a backup file")
    e.add_argument("file")
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("import", help="restore indexes from a backup file")
    i.add_argument("file")
    i.add_argument("--replace", action="store_true", help="overwrite indexes that already exist")
    i.set_defaults(func=cmd_import)
    ls = sub.add_parser("list", help="indexes, or the faces of one index")
    ls.add_argument("--index")
    ls.set_defaults(func=cmd_list)
    d = sub.add_parser("delete", help="delete an index key with all its faces (the default index is emptied)")
    d.add_argument("key")
    d.set_defaults(func=cmd_delete)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except VisionpackError as exc:
        log(f"error: {exc.slug}: {exc.detail}\nhint: {exc.hint}")
        return 2 if isinstance(exc, UsageError) or exc.http_status < 500 else 1
