"""Fill original/wheels and original/sources from the lock files, hash-checked and idempotent.

Used by download.sh::

    python3 -m tools.download.fetch wheels|sources|all [--python 3.10,3.12] [--build] [--root DIR]

``--python`` picks the CPythons whose runtime locks fill original/wheels (default: all of
lockfile.PYTHONS) and records them in original/wheelhouse.json; ``--build`` also fetches the
default Python's lock into original/.state/build-wheels when it is not selected, since the demo
models are built with it.

Each locked file is checked first (present with the locked sha256 -> "ok (cached)", no network).
Only missing or wrong files are fetched, one at a time, into a scratch directory, checked again and
renamed into place, so an interrupted run never leaves a partial file under its final name.
Wheels come through ``pip download --no-deps --require-hashes --only-binary=:all:`` (one locked
line per call, so a failure names its package); an sdist is fetched as is from the index page.
"""

from __future__ import annotations

import argparse
import html.parser
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from visionpack.fsutil import sha256_file

from . import pipconf
from .lockfile import (
    DEFAULT_PYTHON,
    EXIT_BAD_LOCK,
    EXIT_DOWNLOAD_FAILED,
    EXIT_HASH_MISMATCH,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PYTHONS,
    LockEntry,
    LockError,
    LockSpec,
    canonical_name,
    human_size,
    lock_specs,
    parse_lock,
    parse_pythons,
    runtime_lock,
    write_build_record,
)

BUILD_WHEELS = "original/.state/build-wheels"

_NETWORK_MARKERS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Network is unreachable",
    "Name or service not known",
    "Temporary failure in name resolution",
    "ConnectTimeout",
    "ReadTimeout",
    "ProxyError",
    "Connection refused",
    "SSLError",
    "ConnectionError",
    "Max retries exceeded",
    "Could not fetch URL",
    "No route to host",
    "timed out",
)


class FetchError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Links(html.parser.HTMLParser):
    """Anchors of a PEP 503 simple index page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for key, value in attrs:
                if key == "href" and value:
                    self.hrefs.append(value)


class Fetcher:
    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self.python = python
        self.target = DEFAULT_PYTHON  # the CPython whose wheels pip is asked for
        self.state = root / "original" / ".state"
        self.logs = self.state / "logs"
        # Per process: a fetch started beside download.sh (its lock is download.sh's) must not
        # swap files under it.
        self.scratch = self.state / f"download-tmp-{os.getpid()}"
        self._config: dict[str, str] | None = None

    @property
    def config(self) -> dict[str, str]:
        if self._config is None:
            self._config = pipconf.read_config(self.python)
        return self._config

    # -- one lock file ---------------------------------------------------------------------------
    def sync_specs(self, specs: list[LockSpec]) -> None:
        """Sync every spec; a pruned ``dest`` keeps the files of every spec sharing it."""
        keep: dict[str, set[str]] = {}
        for spec in specs:
            keep.setdefault(spec.dest, set()).update(e.filename for e in parse_lock(self.root / spec.lock))
        for spec in specs:
            self.target = spec.python or DEFAULT_PYTHON
            self.sync(spec.name, self.root / spec.lock, self.root / spec.dest, spec.prune, keep[spec.dest])

    def sync(self, label: str, lock: Path, dest: Path, prune: bool, keep: set[str] | None = None) -> tuple[int, int]:
        """Make ``dest`` hold every file of ``lock`` (files outside it and ``keep`` are stale);
        returns (cached, downloaded)."""
        entries = parse_lock(lock)
        dest.mkdir(parents=True, exist_ok=True)
        total = len(entries)
        cached = downloaded = 0
        width = len(str(total))
        for i, entry in enumerate(entries, 1):
            tag = f"[{i:>{width}}/{total}]"
            target = dest / entry.filename
            if target.is_file():
                actual = sha256_file(target)
                if actual == entry.sha256:
                    print(f"{tag} {entry.filename} ok (cached, {human_size(target.stat().st_size)})", flush=True)
                    cached += 1
                    continue
                print(
                    f"{tag} {entry.filename}: sha256 {actual[:16]}... is not the locked "
                    f"{entry.sha256[:16]}...; removing it and downloading again",
                    flush=True,
                )
                target.unlink()
            size = f" ({human_size(entry.size)})" if entry.size else ""
            print(f"{tag} {entry.filename} downloading{size} ...", flush=True)
            started = time.monotonic()
            self.download(entry, target)
            took = time.monotonic() - started
            print(
                f"{tag} {entry.filename} ok (downloaded, {human_size(target.stat().st_size)}, {took:.1f} s)", flush=True
            )
            downloaded += 1
        stale = self.prune(dest, {e.filename for e in entries} | (keep or set()), remove=prune)
        extra = f", {stale} stale removed" if stale else ""
        print(f"{label}: {total} files, {cached} already present, {downloaded} downloaded{extra}", flush=True)
        return cached, downloaded

    @staticmethod
    def prune(dest: Path, keep: set[str], remove: bool) -> int:
        """Files the lock does not name: removed from the wheelhouse (it must be exactly the lock;
        an old paddle wheel would ship 186 MB for nothing), only reported elsewhere."""
        removed = 0
        for path in sorted(dest.iterdir()):
            if path.is_file() and path.name not in keep and not path.name.startswith("."):
                if remove:
                    print(f"    removing {path.name}: not in the lock", flush=True)
                    path.unlink()
                    removed += 1
                else:
                    print(f"    note: {path.name} is not in the lock (left alone)", flush=True)
        return removed

    def download(self, entry: LockEntry, target: Path) -> None:
        if self.scratch.exists():
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True)
        try:
            if entry.filename.endswith(".whl"):
                got = self._pip_download(entry)
            else:
                got = self._index_download(entry)
            actual = sha256_file(got)
            if actual != entry.sha256:
                raise FetchError(EXIT_HASH_MISMATCH, _hash_message(entry, actual))
            os.replace(got, target)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- wheels through pip ----------------------------------------------------------------------
    def _pip_download(self, entry: LockEntry) -> Path:
        req = self.scratch / "req.txt"
        req.write_text(entry.requirement_line() + "\n", encoding="utf-8")
        out_dir = self.scratch / "out"
        cmd = pipconf.pip_command(self.python, "download", self.config) + [
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            *pipconf.target_args(self.target),
            "--progress-bar",
            "off",
            "-r",
            str(req),
            "-d",
            str(out_dir),
        ]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"pip-download-{canonical_name(entry.name)}.log"
        with open(log, "w", encoding="utf-8") as fh:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=pipconf.pip_env())
        text = log.read_text(encoding="utf-8", errors="replace")
        got = out_dir / entry.filename
        if proc.returncode == 0 and got.is_file():
            return got
        error = _classify_pip_failure(entry, proc.returncode, text, log, out_dir)
        if error.code == EXIT_DOWNLOAD_FAILED and "No matching distribution" in text:
            # pip reports an index it could not reach as "no versions" (without retries it does not
            # even warn), so ask the indexes ourselves to tell "unreachable" from "not there".
            try:
                list_index_files(self.config, self.python, entry.name, f"{entry.name}=={entry.version}")
            except FetchError as probe:
                if probe.code == EXIT_UNREACHABLE:
                    raise FetchError(EXIT_UNREACHABLE, f"{probe}\n  log: {log}") from None
        raise error

    # -- an sdist as is, from the index page -----------------------------------------------------
    def _index_download(self, entry: LockEntry) -> Path:
        what = f"{entry.name}=={entry.version}"
        files, indexes = list_index_files(self.config, self.python, entry.name, what)
        for filename, url in files:
            if filename == entry.filename:
                return self._stream(url, entry)
        raise FetchError(
            EXIT_DOWNLOAD_FAILED,
            f"{what}: {entry.filename} is not listed on the configured index(es): {', '.join(indexes)}",
        )

    def _stream(self, url: str, entry: LockEntry, out_dir: Path | None = None) -> Path:
        out = (out_dir or self.scratch) / entry.filename
        timeout = float(self.config.get("timeout") or 60)
        try:
            with _opener(self.config).open(url, timeout=timeout) as resp, open(out, "wb") as fh:
                shutil.copyfileobj(resp, fh, 1 << 20)
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            raise FetchError(
                EXIT_UNREACHABLE,
                f"{entry.name}=={entry.version}: download of {entry.filename} failed: {getattr(exc, 'reason', exc)}",
            ) from None
        return out


def list_index_files(
    config: dict[str, str], python: str, project: str, what: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """(file name, URL) of every file the configured indexes list for ``project``, and the indexes.

    Raises FetchError(EXIT_UNREACHABLE) when no index answered and none of them listed anything.
    """
    try:
        indexes = pipconf.index_urls(config, python)
    except RuntimeError as exc:
        raise FetchError(EXIT_DOWNLOAD_FAILED, f"{what}: {exc}") from None
    opener = _opener(config)
    timeout = float(config.get("timeout") or 60)
    found: list[tuple[str, str]] = []
    unreachable: list[str] = []
    for index in indexes:
        page_url = index.rstrip("/") + "/" + canonical_name(project) + "/"
        try:
            page = _read_page(opener, page_url, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                unreachable.append(f"{page_url}: HTTP {exc.code}")
            continue
        except FileNotFoundError:
            continue
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            unreachable.append(f"{page_url}: {getattr(exc, 'reason', exc)}")
            continue
        parser = _Links()
        parser.feed(page)
        for href in parser.hrefs:
            url = urllib.parse.urljoin(page_url, href).split("#", 1)[0]
            name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
            found.append((name, url))
    if not found and unreachable:
        raise FetchError(EXIT_UNREACHABLE, f"{what}: registry unreachable: " + "; ".join(unreachable))
    return found, indexes


def _opener(config: dict[str, str]) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = []
    cafile = config.get("cert")
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    handlers.append(urllib.request.HTTPSHandler(context=context))
    if config.get("proxy"):
        proxy = config["proxy"]
        handlers.append(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))
    return urllib.request.build_opener(*handlers)


def _read_page(opener: urllib.request.OpenerDirector, url: str, timeout: float) -> str:
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_text(encoding="utf-8", errors="replace")
    req = urllib.request.Request(url, headers={"Accept": "text/html"})
    with opener.open(req, timeout=timeout) as resp:
        return resp.read().decode("utf-8", errors="replace")


def _hash_message(entry: LockEntry, actual: str) -> str:
    return (
        f"{entry.name}=={entry.version}: {entry.filename} from the registry has sha256 {actual}, "
        f"the lock says {entry.sha256}; refusing it (lock line wrong, or the file was tampered with)"
    )


def _classify_pip_failure(entry: LockEntry, rc: int, text: str, log: Path, out_dir: Path) -> FetchError:
    tail = "\n".join("    " + line for line in text.strip().splitlines()[-8:])
    what = f"{entry.name}=={entry.version}"
    if "DO NOT MATCH THE HASHES" in text:
        got = ""
        for line in text.splitlines():
            if line.strip().startswith("Got "):
                got = line.strip()[4:].strip()
        return FetchError(EXIT_HASH_MISMATCH, _hash_message(entry, got or "(see log)") + f"\n  log: {log}")
    if any(marker in text for marker in _NETWORK_MARKERS):
        return FetchError(EXIT_UNREACHABLE, f"{what}: registry unreachable (pip exit {rc})\n{tail}\n  log: {log}")
    saved = sorted(p.name for p in out_dir.glob("*")) if out_dir.is_dir() else []
    if rc == 0 and saved:
        return FetchError(
            EXIT_HASH_MISMATCH, f"{what}: pip saved {saved} instead of the locked {entry.filename}\n  log: {log}"
        )
    return FetchError(EXIT_DOWNLOAD_FAILED, f"{what}: pip download failed (exit {rc})\n{tail}\n  log: {log}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["wheels", "sources", "all"])
    ap.add_argument("--python", default=",".join(PYTHONS), help="CPythons of the wheelhouse, e.g. 3.10,3.12")
    ap.add_argument("--option", action="append", default=[], help="a package variant, e.g. gpu-cu12")
    ap.add_argument("--build", action="store_true", help="also the wheels the model build environment needs")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    try:
        pythons = parse_pythons(args.python)
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_USAGE
    root = args.root.resolve()
    fetcher = Fetcher(root)
    options = tuple(dict.fromkeys(args.option))
    unknown = set(options) - {s.option for s in lock_specs(PYTHONS, options)}
    if unknown:
        print(f"ERROR: --option {', '.join(sorted(unknown))}: no lock is selected by it", file=sys.stderr)
        return EXIT_USAGE
    specs = [
        s
        for s in lock_specs(pythons, options)
        if args.what == "all" or (s.name == "model sources") == (args.what == "sources")
    ]
    if args.build and args.what != "sources" and DEFAULT_PYTHON not in pythons:
        # Not shipped: the build environment is made from these plus original/wheels.
        specs.append(
            LockSpec("build wheelhouse", runtime_lock(DEFAULT_PYTHON), "", BUILD_WHEELS, DEFAULT_PYTHON, shipped=False)
        )
    try:
        fetcher.sync_specs(specs)
        if args.what != "sources":
            write_build_record(root, pythons, options)
    except LockError as exc:
        print(f"ERROR: bad lock file: {exc}", file=sys.stderr)
        return EXIT_BAD_LOCK
    except FetchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
