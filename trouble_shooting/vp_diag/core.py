"""Result records and the shared context every check module reads."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"


@dataclass
class Result:
    group: str  # component heading, e.g. "license", "deploy demo-classify"
    name: str  # short check id, e.g. "process", "port", "model-files"
    status: str  # PASS | WARN | FAIL | SKIP (skipped: a check it depends on failed)
    detail: str
    fix: list[str] = field(default_factory=list)  # exact commands, shown after "Try fixing it:"
    lines: list[str] = field(default_factory=list)  # evidence (matching log lines, changed components)
    deploy: str | None = None
    root: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Deploy:
    """One installed deploy as read from disk (never raises: damage is recorded, not thrown)."""

    root: Path
    name: str
    state: dict[str, Any] | None = None
    state_error: str | None = None

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def version(self) -> str | None:
        return (self.state or {}).get("release")

    @property
    def release(self) -> Path | None:
        return self.dir / "releases" / self.version if self.version else None

    @property
    def service(self) -> str:
        return str((self.state or {}).get("service") or "")

    @property
    def host(self) -> str:
        return str((self.state or {}).get("host") or "127.0.0.1")

    @property
    def port(self) -> int:
        try:
            return int((self.state or {}).get("port") or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def desired(self) -> str:
        return str((self.state or {}).get("desired") or "stopped")

    def release_info(self) -> dict[str, Any]:
        if self.release is None:
            return {}
        try:
            doc = json.loads((self.release / "release.json").read_text(encoding="utf-8"))
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    @property
    def runtime(self) -> Path | None:
        rt = self.release_info().get("runtime")
        return Path(rt) if rt else None


@dataclass
class Context:
    roots: list[Path]
    deploys: list[Deploy]
    package: Path | None  # the unpacked package (holds package/Install/install.py), if found
    diag_dir: Path  # trouble_shooting/ (this tool's directory)
    selected: str | None = None  # a deploy named on the command line
    # Facts one check learns and a later one needs (e.g. "process down" -> skip HTTP).
    facts: dict[str, Any] = field(default_factory=dict)

    def install_cmd(self, root: Path, *args: str) -> str:
        """The exact install.py command line for this root."""
        tool = (
            str(self.package / "package" / "Install" / "install.py") if self.package else "package/Install/install.py"
        )
        return " ".join(
            ["python3", shlex.quote(tool), "--root", shlex.quote(str(root))] + [shlex.quote(a) for a in args]
        )

    def samples(self) -> list[Path]:
        """Where bundled sample images may be: next to this tool (in the tar), then the package's."""
        out = [self.diag_dir / "samples"]
        if self.package:
            out.append(self.package / "package" / "samples")
        return out

    def sample(self, rel: str) -> Path | None:
        for base in self.samples():
            if (base / rel).is_file():
                return base / rel
        return None

    def deploy_fact(self, deploy: Deploy, key: str, default: Any = None) -> Any:
        return self.facts.get((str(deploy.root), deploy.name, key), default)

    def set_deploy_fact(self, deploy: Deploy, key: str, value: Any) -> None:
        self.facts[(str(deploy.root), deploy.name, key)] = value


def quote(path: os.PathLike | str) -> str:
    return shlex.quote(str(path))


def deploy_group(deploy: Deploy) -> str:
    return f"deploy {deploy.name} ({deploy.dir})"
