"""Finding install roots and deploys without being told (issue 7 item 1).

Order: ``--root``; ``$VISIONPACK_ROOT``; ``/opt/visionpack``; ``<package>/work`` (demo.sh's
root); and the roots of running gunicorn masters, read from their ``VISIONPACK_CONFIG``
(``<root>/<deploy>/releases/<v>/config.yml``) in /proc environ or their ``-c`` config path
in cmdline. A directory counts as a root when it has ``licenses/`` or a deploy journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from .core import Deploy

DEFAULT_ROOT = Path("/opt/visionpack")
RESERVED = {".runtime", "licenses"}
PROC = Path("/proc")


def find_package(diag_dir: Path) -> Path | None:
    """The unpacked package this tool ships in (trouble_shooting/ sits at its top), if any."""
    top = diag_dir.resolve().parent
    return top if (top / "package" / "Install" / "install.py").is_file() else None


def is_root(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "licenses").is_dir() or (path / ".runtime").is_dir():
        return True
    return bool(deploy_names(path))


def deploy_names(root: Path) -> list[str]:
    """Directories holding a journal (state.json), as layout.Root.deploy_names does."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [
        p.name
        for p in entries
        if p.name not in RESERVED and not p.name.startswith(".") and (p / "state.json").is_file()
    ]


def _root_of_release_file(path: str) -> Path | None:
    # <root>/<deploy>/releases/<version>/{config.yml, start/gunicorn_conf.py}
    p = Path(path)
    parts = p.parts
    if "releases" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("releases")
    if i < 2:
        return None
    return Path(*parts[: i - 1])


def running_roots(proc: Path = PROC) -> list[Path]:
    """Roots of running gunicorn processes (environ when readable, else the -c path in cmdline)."""
    found: list[Path] = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(cmd).decode("utf-8", "replace")
        if "gunicorn" not in text and "[visionpack:" not in text:
            continue
        candidates = []
        try:
            for var in (entry / "environ").read_bytes().split(b"\0"):
                if var.startswith(b"VISIONPACK_CONFIG="):
                    candidates.append(var.split(b"=", 1)[1].decode("utf-8", "replace"))
        except OSError:
            pass
        args = [c.decode("utf-8", "replace") for c in cmd]
        for i, arg in enumerate(args[:-1]):
            if arg in ("-c", "--config"):
                candidates.append(args[i + 1])
        for cand in candidates:
            root = _root_of_release_file(cand)
            if root is not None and root not in found:
                found.append(root)
    return found


def find_roots(arg: str | None, env: dict | None = None, package: Path | None = None, proc: Path = PROC) -> list[Path]:
    """Every install root found, in the order above, without duplicates."""
    env = os.environ if env is None else env
    if arg:
        return [Path(os.path.abspath(os.path.expanduser(arg)))]
    cands: list[Path] = []
    if env.get("VISIONPACK_ROOT"):
        cands.append(Path(os.path.abspath(os.path.expanduser(env["VISIONPACK_ROOT"]))))
    cands.append(DEFAULT_ROOT)
    if package is not None:
        cands.append(package / "work")
    cands += running_roots(proc)
    out: list[Path] = []
    seen = set()
    for c in cands:
        key = os.path.realpath(c)
        if key in seen or not is_root(c):
            continue
        seen.add(key)
        out.append(c)
    return out


def load_deploys(roots: Iterable[Path], only: str | None = None) -> list[Deploy]:
    out = []
    for root in roots:
        for name in deploy_names(root):
            if only and name != only:
                continue
            out.append(read_deploy(root, name))
    return out


def read_deploy(root: Path, name: str) -> Deploy:
    d = Deploy(root=root, name=name)
    try:
        doc = json.loads((root / name / "state.json").read_text(encoding="utf-8"))
    except OSError as exc:
        d.state_error = f"cannot read state.json: {exc.strerror}"
        return d
    except ValueError as exc:
        d.state_error = f"state.json is not valid JSON ({exc})"
        return d
    if not isinstance(doc, dict):
        d.state_error = "state.json does not hold a JSON object"
    else:
        d.state = doc
    return d
