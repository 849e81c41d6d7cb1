"""Model files of each deploy's release against their manifest checksums (and the sums
release.json recorded at install, which also covers a user's raw PaddleX export)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "models"
ORDER = 80


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected(bundle: Path, recorded: Dict[str, str]) -> Dict[str, str]:
    """file -> sha256: the manifest's, else what the installer recorded."""
    try:
        doc = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        files = doc.get("files") if isinstance(doc, dict) else None
        if isinstance(files, dict) and files:
            return {str(k): str(v).lower() for k, v in files.items()}
    except (OSError, ValueError):
        pass
    return {k: v for k, v in recorded.items() if k != "manifest.json"}


def bundle_check(ctx: Context, d: Deploy, bundle: Path, recorded: Dict[str, str]) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    want = expected(bundle, recorded)
    if not want:
        return Result(g, f"model {bundle.name}", WARN, "no manifest.json and no recorded checksums: not verifiable",
                      [f"ls -l {quote(bundle)}"], **kw)
    bad: List[str] = []
    for name, digest in sorted(want.items()):
        f = bundle / name
        if not f.is_file():
            bad.append(f"{name}: missing")
        elif sha256_file(f) != digest:
            bad.append(f"{name}: sha256 differs from the manifest")
    if not bad:
        return Result(g, f"model {bundle.name}", PASS, f"{len(want)} file(s) match their checksums", **kw)
    return Result(g, f"model {bundle.name}", FAIL, f"{len(bad)} file(s) damaged in {bundle}",
                  repair(ctx, d, bundle, want, bad), bad, **kw)


def repair(ctx: Context, d: Deploy, bundle: Path, want: Dict[str, str], bad: List[str]) -> List[str]:
    """Copy intact files back from the package when its copy matches; else reinstall the deploy."""
    src: Optional[Path] = ctx.package / "models" / bundle.name if ctx.package else None
    cmds = []
    for entry in bad:
        name = entry.split(":", 1)[0]
        good = src / name if src else None
        if good is not None and good.is_file() and sha256_file(good) == want[name]:
            cmds.append(f"cp {quote(good)} {quote(bundle / name)}")
        else:
            cmds = []
            break
    if cmds:
        return cmds + [ctx.install_cmd(d.root, "restart", d.name)]
    return ["bash download.sh --verify  # in the package: is its copy intact?",
            ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)]


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or d.release is None:
            continue
        models = d.release / "models"
        recorded = d.release_info().get("models") or {}
        if not models.is_dir():
            yield Result(deploy_group(d), "models", FAIL, f"{models} is missing",
                         [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)],
                         deploy=d.name, root=str(d.root))
            continue
        for bundle in sorted(p for p in models.iterdir() if p.is_dir()):
            rec = recorded.get(bundle.name) if isinstance(recorded, dict) else None
            yield bundle_check(ctx, d, bundle, rec if isinstance(rec, dict) else {})
