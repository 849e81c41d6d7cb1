"""The runtime venvs: each built offline from a package's wheelhouse, shared per lock file.

A venv is built in ``.runtime/.build-<key>-<pid>`` and renamed to ``.runtime/<key>`` only when
pip has finished, so a killed build never leaves a directory that looks usable. pip writes
absolute paths into the scripts it installs (``bin/gunicorn``'s shebang), so those are rewritten
to the final path before the rename.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import EnvironmentCheckFailed, RuntimeInstallFailed
from ..fsutil import fsync_dir
from . import serviceuser, settings
from .layout import Root
from .source import Source

BUILD_PREFIX = ".build-"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def gunicorn_of(venv: Path) -> Path:
    return venv / "bin" / "gunicorn"


def is_complete(venv: Path) -> bool:
    # The rename is the commit, but check the two files we exec so a hand-damaged venv is rebuilt.
    return python_of(venv).exists() and gunicorn_of(venv).exists()


def runnable_by_service(python: os.PathLike[str] | str, ids: tuple[int, int] | None) -> str | None:
    """None if the service user can run ``python`` (a venv's or a base interpreter), else why not.

    A venv's bin/python is a symlink to its base interpreter, whose standard library sits
    beside it: an interpreter under root's 0700 home (pyenv) builds a venv the service
    user cannot start.
    """
    real = Path(os.path.realpath(python))
    return serviceuser.first_blocked([real, real.parent.parent / "lib"], ids)


def service_python(python: str = sys.executable, say: Callable[[str], None] = print) -> str:
    """The interpreter to build the runtime with: ``python``, or the same X.Y version elsewhere
    on the system when the service user cannot run ``python``. EnvironmentCheckFailed if none."""
    if not serviceuser.is_root():
        return python
    ids = serviceuser.lookup()
    why = runnable_by_service(python, ids)
    if why is None:
        return python
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}", f"/bin/python{version}"):
        if os.path.exists(candidate) and runnable_by_service(candidate, ids) is None and _has_venv(candidate):
            say(
                f"the services cannot run {python} ({why}); building the runtime with {candidate} "
                f"(the same Python {version})"
            )
            return candidate
    raise EnvironmentCheckFailed(
        f"{why}; or run install.py with a Python {version} that every user can run "
        f"(with its venv module), e.g. /usr/bin/python{version}"
    )


def _has_venv(python: str) -> bool:
    try:
        return (
            subprocess.run(
                [python, "-c", "import venv, ensurepip"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _tag(python: str) -> str:
    return hashlib.sha256(os.path.realpath(python).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def ensure(root: Root, source: Source, python: str = sys.executable, say: Callable[[str], None] = print) -> Path:
    """Path of a complete runtime venv for ``source``'s lock, building it if needed.

    As root the venv must be one the service user can run: one that an older installer built
    from an interpreter it cannot reach is left to the releases using it (venv_gc removes
    it with them) and a sibling ``<key>-<tag>`` is built from a reachable interpreter.
    """
    key = source.lock_key()
    final = root.venv(key)
    ids = serviceuser.lookup()
    if is_complete(final) and (ids is None or runnable_by_service(python_of(final), ids) is None):
        return _touched(final)
    python = service_python(python, say)
    if is_complete(final):
        final = root.venv(f"{key}-{_tag(python)}")
        if is_complete(final):
            return _touched(final)
    root.venv_base.mkdir(parents=True, exist_ok=True)
    # Deploys installing at once share the venv, so the build itself is serialised root-wide.
    fd = os.open(root.venv_base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if is_complete(final):
            return _touched(final)
        _sweep(root)
        if final.exists():  # damaged by hand: rebuild rather than trust it
            shutil.rmtree(final)
        build = root.venv_base / f"{BUILD_PREFIX}{key}-{os.getpid()}"
        say(f"building runtime {final} from {source.wheels} (offline, this takes a minute)")
        started = time.monotonic()
        try:
            _build(build, source, python, root.venv_log)
            _relocate(build, final)
            os.rename(build, final)
        except BaseException:
            # A failed build leaves nothing; only SIGKILL can skip this, and _sweep covers that.
            shutil.rmtree(build, ignore_errors=True)
            raise
        fsync_dir(root.venv_base)
        say(f"runtime ready in {time.monotonic() - started:.0f} s")
        return _touched(final)
    finally:
        os.close(fd)


def _touched(venv: Path) -> Path:
    """Mark the venv as in use now: venv_gc keeps venvs used within its grace period, so an
    install between this call and its release.json cannot lose the venv to another deploy's GC."""
    try:
        os.utime(venv)
    except OSError:
        pass
    return venv


def _sweep(root: Root) -> None:
    """Remove build dirs of killed installers; safe because we hold the runtime lock."""
    for stale in root.venv_base.glob(BUILD_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in settings.environ().items() if not k.startswith("PIP_")}
    # An operator's pip.conf could add an index or a proxy; this install must see the wheelhouse only.
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        out.write(f"\n[{time.strftime('%Y-%m-%d %H:%M:%S')}] $ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_pip_env())
    if proc.returncode != 0:
        raise RuntimeInstallFailed(f"{what} failed (exit {proc.returncode}); last lines of {log}:\n{tail(log)}")


def _build(build: Path, source: Source, python: str, log: Path) -> None:
    if not source.lock_file.is_file() or not source.wheels.is_dir():
        raise RuntimeInstallFailed(f"{source.lock_file} or {source.wheels} is missing; run 'bash download.sh'")
    _run([python, "-m", "venv", str(build)], log, "creating the venv")
    _run(
        [
            str(python_of(build)),
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-cache-dir",
            "--find-links",
            str(source.wheels),
            "--require-hashes",
            "-r",
            str(source.lock_file),
        ],
        log,
        "installing the wheelhouse",
    )
    if not gunicorn_of(build).exists():
        raise RuntimeInstallFailed(f"{source.lock_file} does not install gunicorn; the service cannot run")


def _relocate(build: Path, final: Path) -> None:
    """Point scripts pip wrote at their final home (shebangs and activate scripts)."""
    old, new = str(build).encode(), str(final).encode()
    for path in (build / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data[:4096] or path.name.startswith("activate"):
            path.write_bytes(data.replace(old, new))


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
