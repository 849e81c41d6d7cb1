"""Offline completeness check of original/ and the model bundles (download.sh --verify).

Pure standard library, no network, runs with the system python3 before any venv exists::

    python3 tools/download/verify.py [--root DIR] [--json] [--problems-only]

Reuse from Python (the installer does)::

    sys.path.insert(0, str(repo_root)); from tools.download.verify import verify
    problems = verify(repo_root)          # [] when complete

Checked: every file of each runtime lock the package was built with (original/wheelhouse.json
names its Pythons; original/requirements.lock alone when it is absent) in original/wheels/ and of
original/sources.lock in original/sources/ (sha256); every bundle named in package/catalog.yml has
models/<name>/manifest.json and each file the manifest lists with its sha256; original/SHA256SUMS
exists, agrees with the locks and manifests, and every other file it lists matches.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools.download` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tools.download"

from tools.download import catalog, sums  # noqa: E402
from tools.download.lockfile import (  # noqa: E402
    BUILD_RECORD,
    DEFAULT_PYTHON,
    EXIT_INCOMPLETE,
    LockError,
    build_record,
    lock_specs,
    parse_lock,
)
from visionpack.fsutil import sha256_file  # noqa: E402

OK, MISSING, CORRUPT, INVALID = "OK", "MISSING", "CORRUPT", "INVALID"


@dataclass(frozen=True)
class Item:
    status: str  # OK | MISSING | CORRUPT (wrong sha256) | INVALID (unreadable lock/catalog/manifest/sums)
    kind: str  # wheel | source | model | file | lock | catalog | manifest | sums
    path: str  # relative to the repo root
    detail: str = ""


Problem = Item


class _Checker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[Item] = []
        self.expected: dict[str, str] = {}  # rel path -> sha256 some lock or manifest demands
        self._digests: dict[str, str] = {}

    def digest(self, rel: str) -> str:
        if rel not in self._digests:
            self._digests[rel] = sha256_file(self.root / rel)
        return self._digests[rel]

    def file(self, kind: str, rel: str, sha: str) -> None:
        if self.expected.get(rel) == sha:
            return  # a py3 wheel in several Pythons' locks: one item
        self.expected[rel] = sha
        path = self.root / rel
        if not path.is_file():
            self.items.append(Item(MISSING, kind, rel))
            return
        actual = self.digest(rel)
        if actual != sha:
            self.items.append(Item(CORRUPT, kind, rel, f"sha256 {actual}, expected {sha}"))
        else:
            self.items.append(Item(OK, kind, rel))

    def lock(self, kind: str, lock_rel: str, dest_rel: str) -> None:
        try:
            entries = parse_lock(self.root / lock_rel)
        except LockError as exc:
            self.items.append(Item(INVALID, "lock", lock_rel, str(exc)))
            return
        for entry in entries:
            self.file(kind, f"{dest_rel}/{entry.filename}", entry.sha256)

    def models(self) -> None:
        cat_rel = "package/catalog.yml"
        try:
            names = catalog.bundle_names(self.root / cat_rel)
        except FileNotFoundError:
            self.items.append(Item(MISSING, "catalog", cat_rel))
            return
        except catalog.CatalogError as exc:
            self.items.append(Item(INVALID, "catalog", cat_rel, str(exc)))
            return
        for name in names:
            self.bundle(name)

    def bundle(self, name: str) -> None:
        manifest_rel = f"models/{name}/manifest.json"
        if not (self.root / "models" / name).is_dir():
            self.items.append(Item(MISSING, "model", f"models/{name}/", "bundle directory absent"))
            return
        try:
            manifest = json.loads((self.root / manifest_rel).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.items.append(Item(MISSING, "manifest", manifest_rel))
            return
        except (OSError, ValueError) as exc:
            self.items.append(Item(INVALID, "manifest", manifest_rel, f"unreadable: {exc}"))
            return
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict) or not files:
            self.items.append(Item(INVALID, "manifest", manifest_rel, "no 'files' mapping"))
            return
        for fname, sha in sorted(files.items()):
            # An Ultralytics export keeps its Paddle folder as written (models/yolov8n_pose_synthetic:
            # <name>_paddle_model/inference_model/...), so relative paths inside the bundle are allowed;
            # nothing absolute, hidden, or climbing out ("..") is.
            if not isinstance(sha, str) or len(sha) != 64 or any(not p or p.startswith(".") for p in fname.split("/")):
                self.items.append(Item(INVALID, "manifest", manifest_rel, f"bad entry {fname!r}: {sha!r}"))
                continue
            self.file("model", f"models/{name}/{fname}", sha.lower())
        self.rendition(manifest_rel, manifest.get("onnx"), files)

    def rendition(self, manifest_rel: str, record: object, files: dict[str, object]) -> None:
        """The ONNX rendition record (docs/backends.md), when there is one: it names a file that "files"
        lists, with parity.npz beside it (both then checked like every file), or says why there is none."""
        if record is None:
            return
        if not isinstance(record, dict) or not any(isinstance(record.get(k), str) for k in ("file", "unavailable")):
            self.items.append(Item(INVALID, "manifest", manifest_rel, "'onnx' names neither a file nor why not"))
            return
        if "file" in record:
            for needed in (record["file"], "parity.npz"):
                if needed not in files:
                    self.items.append(
                        Item(INVALID, "manifest", manifest_rel, f"ONNX rendition: 'files' lacks {needed}")
                    )

    def sums(self) -> None:
        rel = sums.SUMS_PATH
        try:
            entries = sums.parse((self.root / rel).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.items.append(Item(MISSING, "sums", rel))
            return
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self.items.append(Item(INVALID, "sums", rel, str(exc)))
            return
        listed = {path for _, path in entries}
        for path in sorted(set(self.expected) - listed):
            self.items.append(Item(INVALID, "sums", rel, f"does not list {path}"))
        for sha, path in entries:
            if path in self.expected:
                # already checked against its lock/manifest; only a disagreement is news
                if sha != self.expected[path]:
                    self.items.append(Item(INVALID, "sums", rel, f"{path}: {sha} disagrees with the lock/manifest"))
                continue
            self.file("file", path, sha)


def check(repo_root: Path | str) -> list[Item]:
    """Every item checked, OK ones included, in report order."""
    checker = _Checker(Path(repo_root).resolve())
    try:
        pythons, options = build_record(checker.root)
    except ValueError as exc:
        checker.items.append(Item(INVALID, "lock", BUILD_RECORD, str(exc)))
        pythons, options = (DEFAULT_PYTHON,), ()  # still check what every package holds
    for spec in lock_specs(pythons, options):
        if spec.shipped:
            checker.lock("source" if spec.dest == "original/sources" else "wheel", spec.lock, spec.dest)
    checker.models()
    checker.sums()
    return checker.items


def verify(repo_root: Path | str) -> list[Problem]:
    """The problems only: [] means original/ and the catalog's bundles are complete and intact."""
    return [item for item in check(repo_root) if item.status != OK]


def summary(items: list[Item]) -> str:
    counts = {s: sum(1 for i in items if i.status == s) for s in (OK, MISSING, CORRUPT, INVALID)}
    verdict = "complete" if counts[OK] == len(items) else "INCOMPLETE"
    return (
        f"verify: {len(items)} checked, {counts[OK]} OK, {counts[MISSING]} MISSING, "
        f"{counts[CORRUPT]} CORRUPT, {counts[INVALID]} INVALID -> {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--problems-only", action="store_true", help="do not print OK lines")
    args = ap.parse_args(argv)
    items = check(args.root)
    problems = [i for i in items if i.status != OK]
    if args.json:
        print(
            json.dumps(
                {"complete": not problems, "summary": summary(items), "items": [asdict(i) for i in items]}, indent=1
            )
        )
    else:
        for item in items:
            if item.status == OK and args.problems_only:
                continue
            detail = f"  ({item.detail})" if item.detail else ""
            print(f"{item.status:<8} {item.kind:<8} {item.path}{detail}")
        print(summary(items))
    return EXIT_INCOMPLETE if problems else 0


if __name__ == "__main__":
    sys.exit(main())
