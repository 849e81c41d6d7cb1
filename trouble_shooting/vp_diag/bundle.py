"""--bundle: logs, configuration (secrets redacted) and the report in one tarball for support.

Nothing private goes in: files named *.key or holding a PRIVATE KEY are never packed (there
should be none in a root), and any field or line whose name contains key, secret or token
has its value replaced with <redacted>. Logs are cut to their last few MiB.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Any

from .core import Context

LOG_TAIL = 4 << 20
_SECRET_NAME = re.compile(r"key|secret|token|passw", re.I)
# YAML/INI-ish "name: value" or "name = value" lines whose name looks secret.
_SECRET_LINE = re.compile(r"^(\s*-?\s*[\"']?[\w.-]*(?:key|secret|token|passw)[\w.-]*[\"']?\s*[:=]\s*)(\S.*)$", re.I)
REDACTED = "<redacted>"


def redact_json(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            k: (REDACTED if _SECRET_NAME.search(str(k)) and not isinstance(v, (dict, list)) else redact_json(v))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [redact_json(v) for v in doc]
    return doc


def redact_text(text: str) -> str:
    return "\n".join(_SECRET_LINE.sub(lambda m: m.group(1) + REDACTED, ln) for ln in text.splitlines()) + "\n"


def _private(path: Path, data: bytes) -> bool:
    return path.suffix == ".key" or b"PRIVATE KEY" in data


def _tail(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read()


def collect(ctx: Context) -> list[tuple[str, bytes]]:
    """(name in the tarball, bytes) of everything support needs."""
    files: list[tuple[str, bytes]] = []

    def add(arc: str, path: Path, kind: str) -> None:
        try:
            data = _tail(path, LOG_TAIL) if kind == "log" else path.read_bytes()
        except OSError:
            return
        if _private(path, data):
            return
        if kind == "json":
            try:
                data = (json.dumps(redact_json(json.loads(data)), indent=2, sort_keys=True) + "\n").encode()
            except ValueError:
                data = redact_text(data.decode("utf-8", "replace")).encode()
        elif kind == "text":
            data = redact_text(data.decode("utf-8", "replace")).encode()
        files.append((arc, data))

    for i, root in enumerate(ctx.roots):
        base = f"root{i}"
        files.append((f"{base}/ROOT", (str(root) + "\n").encode()))
        lic = root / "licenses"
        for p in sorted(lic.glob("*")) if lic.is_dir() else []:
            if p.is_file():
                # Public keys and signed licenses are public by design; copied byte for byte
                # (redacting base64 that happens to contain "key=" would only corrupt them).
                add(f"{base}/licenses/{p.name}", p, "raw")
        add(f"{base}/.runtime/install.log", root / ".runtime" / "install.log", "log")
        for d in [d for d in ctx.deploys if d.root == root]:
            db = f"{base}/{d.name}"
            add(f"{db}/state.json", d.dir / "state.json", "json")
            cur = d.dir / "current"
            if os.path.lexists(cur):
                files.append((f"{db}/current.link", (os.readlink(cur) + "\n").encode()))
            if d.release:
                add(f"{db}/release/config.yml", d.release / "config.yml", "text")
                add(f"{db}/release/release.json", d.release / "release.json", "json")
                for m in sorted((d.release / "models").glob("*/manifest.json")):
                    add(f"{db}/release/models/{m.parent.name}/manifest.json", m, "json")
            logs = d.dir / "logs"
            for p in sorted(logs.iterdir()) if logs.is_dir() else []:
                if p.is_file():
                    add(f"{db}/logs/{p.name}", p, "log")
    return files


def write(ctx: Context, report_text: str, report_json: str, out: Path | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = out or Path.cwd() / f"visionpack-support-{os.uname().nodename}-{stamp}.tar.gz"
    top = f"visionpack-support-{stamp}"
    entries = [("report.txt", report_text.encode()), ("report.json", report_json.encode())] + collect(ctx)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    os.chmod(tmp, 0o600)  # logs may hold customer image names; keep the tarball private to its maker
    os.replace(tmp, out)
    return out
