"""original/SHA256SUMS: every payload file, ``sha256sum -c`` compatible, paths relative to the repo root.

    python3 -m tools.download.sums [--root DIR]          # (re)write it atomically
    cd <repo root> && sha256sum -c original/SHA256SUMS   # check it with coreutils

Covered: original/wheels/, original/sources/, original/images/ (every file, recursively) and every
model bundle directory under models/ (a directory holding inference.yml or manifest.json).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from visionpack.fsutil import sha256_file

from .lockfile import atomic_write

PAYLOAD_DIRS = ("original/wheels", "original/sources", "original/images")
SUMS_PATH = "original/SHA256SUMS"
_LINE_RE = re.compile(r"^(?P<sha>[0-9a-f]{64}) [ *](?P<path>.+)$")


def _files_under(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    ]


def bundle_dirs(root: Path) -> list[Path]:
    models = root / "models"
    if not models.is_dir():
        return []
    return sorted(
        d
        for d in models.iterdir()
        if d.is_dir() and ((d / "inference.yml").is_file() or (d / "manifest.json").is_file())
    )


def payload_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file SHA256SUMS covers, sorted."""
    files: list[Path] = []
    for rel in PAYLOAD_DIRS:
        files += _files_under(root / rel)
    for bundle in bundle_dirs(root):
        files += _files_under(bundle)
    return sorted(p.relative_to(root).as_posix() for p in files)


def render(root: Path, hashes: dict[str, str] | None = None) -> str:
    """SHA256SUMS text; ``hashes`` may supply digests already computed this run."""
    hashes = hashes or {}
    lines = []
    for rel in payload_files(root):
        if "\n" in rel or "\\" in rel:
            raise ValueError(f"file name sha256sum cannot list plainly: {rel!r}")
        digest = hashes.get(rel) or sha256_file(root / rel)
        lines.append(f"{digest}  {rel}\n")
    return "".join(lines)


def write(root: Path, hashes: dict[str, str] | None = None) -> int:
    text = render(root, hashes)
    atomic_write(root / SUMS_PATH, text)
    return text.count("\n")


def parse(text: str) -> list[tuple[str, str]]:
    """(sha256, relative path) per line; raises ValueError on a malformed or escaping line."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _LINE_RE.match(line)
        if not m:
            raise ValueError(f"line {lineno} is not '<sha256>  <path>': {line!r}")
        rel = m.group("path")
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ValueError(f"line {lineno}: path leaves the tree: {rel!r}")
        entries.append((m.group("sha"), rel))
    return entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sums", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    n = write(args.root.resolve())
    print(f"wrote {SUMS_PATH} ({n} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
