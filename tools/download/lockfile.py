"""Read and write our lock files (pip hash-checking format plus a ``# file:`` comment).

A line looks like::

    numpy==2.2.6 --hash=sha256:<64 hex>  # file: numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.whl size: 16821570

pip strips the trailing comment, so the file is a valid ``-r`` argument for ``--require-hashes``;
the comment gives the exact file name so presence can be checked without asking an index.

Which lock files exist, where their files go and which Python each targets is one table,
:func:`lock_specs`: download.sh fetches the selected rows, verify.py checks the rows a package was
built with (``original/wheelhouse.json``), lock.py regenerates them.
"""

from __future__ import annotations

import json
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


# CPython versions the runtime wheelhouse can be built for: every one paddlepaddle 3.3.1 has a
# manylinux x86_64 wheel for. 3.9 gets older pins of numpy, gunicorn, faiss-cpu, onnxruntime,
# openvino and psycopg (original/requirements.in's 'python_version < "3.10"' lines).
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# Its lock keeps the plain name (original/requirements.lock): the Docker image and the model
# build environment use this Python.
DEFAULT_PYTHON = "3.11"
# What a package's wheelhouse was built with: {"pythons": [...], "options": [...]}.
BUILD_RECORD = "original/wheelhouse.json"


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


@dataclass(frozen=True)
class LockSpec:
    """One lock file: resolved from ``source`` for ``python`` (None: any), its files kept in ``dest``.

    ``option`` names the download.sh option that selects it ("" : always); ``shipped`` is False for
    locks whose files only the vendor's build machine uses; ``prune`` removes files of ``dest`` that
    no selected lock names.
    """

    name: str  # shown in download.sh's output
    lock: str
    source: str
    dest: str
    python: str | None = None
    option: str = ""
    shipped: bool = True
    prune: bool = True


def python_tag(python: str) -> str:
    """'3.12' -> 'cp312'."""
    return "cp" + python.replace(".", "")


def runtime_lock(python: str) -> str:
    """Repo-relative lock of the runtime wheelhouse for ``python``."""
    if python == DEFAULT_PYTHON:
        return "original/requirements.lock"
    return f"original/requirements-{python_tag(python)}.lock"


def parse_pythons(text: str) -> tuple[str, ...]:
    """'3.12,3.10' -> ('3.10', '3.12'); ValueError naming the supported ones otherwise."""
    wanted = {p.strip() for p in text.split(",") if p.strip()}
    unknown = sorted(wanted - set(PYTHONS))
    if unknown or not wanted:
        raise ValueError(f"--python {text!r}: supported are {','.join(PYTHONS)} (comma separated)")
    return tuple(p for p in PYTHONS if p in wanted)


def lock_specs(pythons: tuple[str, ...] = PYTHONS, options: tuple[str, ...] = ()) -> list[LockSpec]:
    """The locks a build with these Pythons and download.sh options uses, runtime wheelhouse first."""
    specs = [
        LockSpec(f"wheelhouse {python_tag(p)}", runtime_lock(p), "original/requirements.in", "original/wheels", p)
        for p in pythons
    ]
    # A variant replaces the runtime lock of its Python on the server (installer/source.py's lock_for).
    specs.append(
        LockSpec(
            "wheelhouse gpu-cu12",
            "original/requirements-gpu-cu12.lock",
            "original/requirements-gpu-cu12.in",
            "original/wheels",
            DEFAULT_PYTHON,
            option="gpu-cu12",
        )
    )
    specs.append(LockSpec("model sources", "original/sources.lock", "", "original/sources", prune=False))
    return [s for s in specs if not s.option or (s.option in options and s.python in (None, *pythons))]


def build_record(root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(pythons, options) the package under ``root`` was built with. A package from before the
    record existed holds the default Python's wheelhouse only. ValueError if the record is unreadable."""
    path = root / BUILD_RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return (DEFAULT_PYTHON,), ()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{BUILD_RECORD}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{BUILD_RECORD}: not a JSON object")
    pythons, options = data.get("pythons"), data.get("options", [])
    if not isinstance(pythons, list) or not isinstance(options, list):
        raise ValueError(f"{BUILD_RECORD}: 'pythons' and 'options' must be lists")
    try:
        return parse_pythons(",".join(map(str, pythons))), tuple(str(o) for o in options)
    except ValueError as exc:
        raise ValueError(f"{BUILD_RECORD}: {exc}") from None


def write_build_record(root: Path, pythons: tuple[str, ...], options: tuple[str, ...]) -> None:
    atomic_write(root / BUILD_RECORD, json.dumps({"pythons": list(pythons), "options": list(options)}) + "\n")


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
