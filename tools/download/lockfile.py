"""Read and write our lock files (pip hash-checking format plus a ``# file:`` comment).

A line looks like::

    numpy==2.2.6 --hash=sha256:<64 hex>  # file: numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl size: 16821570

pip strips the trailing comment, so the file is a valid ``-r`` argument for ``--require-hashes``;
the comment gives the exact file name so presence can be checked without asking an index.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Exit codes shared by download.sh and the helpers (documented in original/README.md).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_IMAGE_NOT_BUILT = 3
EXIT_UNREACHABLE = 4
EXIT_DOWNLOAD_FAILED = 5
EXIT_HASH_MISMATCH = 6
EXIT_BUILDENV = 7
EXIT_MODELS = 8
EXIT_INCOMPLETE = 9
EXIT_BAD_LOCK = 10

_LINE_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)"
    r"\s+--hash=sha256:(?P<sha>[0-9a-f]{64})"
    r"\s+#\s*file:\s*(?P<file>\S+)(?:\s+size:\s*(?P<size>\d+))?\s*$"
)


class LockError(Exception):
    """A lock file is malformed (exit code EXIT_BAD_LOCK)."""


@dataclass(frozen=True)
class LockEntry:
    name: str
    version: str
    sha256: str
    filename: str
    size: int | None = None

    def requirement_line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"

    def lock_line(self) -> str:
        size = f" size: {self.size}" if self.size is not None else ""
        return f"{self.requirement_line()}  # file: {self.filename}{size}"


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(path: Path | str) -> list[LockEntry]:
    """Entries of a lock file; raises LockError naming the first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LockError(f"{path}: lock file not found") from None
    entries: list[LockEntry] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE_RE.match(line)
        if not m:
            raise LockError(f"{path}:{lineno}: not 'name==version --hash=sha256:<64 hex>  # file: <name>': {raw!r}")
        filename = m.group("file")
        if "/" in filename or filename.startswith("."):
            raise LockError(f"{path}:{lineno}: file name must be a bare name: {filename!r}")
        key = canonical_name(m.group("name"))
        if key in seen:
            raise LockError(f"{path}:{lineno}: {m.group('name')} is locked twice")
        seen.add(key)
        size = int(m.group("size")) if m.group("size") else None
        entries.append(LockEntry(m.group("name"), m.group("version"), m.group("sha"), filename, size))
    if not entries:
        raise LockError(f"{path}: no entries")
    return entries


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Temp file + fsync + rename + directory fsync: a reader sees the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable; keeps type checkers content
