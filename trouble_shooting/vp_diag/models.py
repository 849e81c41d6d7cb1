"""Model files of each deploy's release against their manifest checksums (and the sums
release.json recorded at install, which also covers a user's raw PaddleX export).

The bundle layout, the checksums and the comparison are the package's own ``bundle`` module,
loaded by path (shared.py), not a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import shared
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group, quote

GROUP = "models"
ORDER = 80


def expected(core: Any, bundle: Path, recorded: dict[str, str]) -> dict[str, str]:
    """file -> sha256: the manifest's, else what the installer recorded."""
    try:
        declared = core.declared_checksums(core.read_manifest(bundle))
    except core.ModelInvalid:
        declared = {}
    return declared or {k: v for k, v in recorded.items() if k != core.MANIFEST_FILE}


def bundle_check(ctx: Context, core: Any, d: Deploy, bundle: Path, recorded: dict[str, str]) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    want = expected(core, bundle, recorded)
    if not want:
        return Result(
            g,
            f"model {bundle.name}",
            WARN,
            "no manifest.json and no recorded checksums: not verifiable",
            [f"ls -l {quote(bundle)}"],
            **kw,
        )
    damage = core.damaged(bundle, want)
    if not damage:
        return Result(g, f"model {bundle.name}", PASS, f"{len(want)} file(s) match their checksums", **kw)
    bad = [
        f"{x.name}: {'missing' if x.problem == core.MISSING else 'sha256 differs from the manifest'}" for x in damage
    ]
    return Result(
        g,
        f"model {bundle.name}",
        FAIL,
        f"{len(bad)} file(s) damaged in {bundle}",
        repair(ctx, core, d, bundle, want, [x.name for x in damage]),
        bad,
        **kw,
    )


def repair(ctx: Context, core: Any, d: Deploy, bundle: Path, want: dict[str, str], bad: list[str]) -> list[str]:
    """Copy intact files back from the package when its copy matches; else reinstall the deploy."""
    src: Path | None = ctx.package / "models" / bundle.name if ctx.package else None
    cmds = []
    for name in bad:
        if src is not None and not core.damaged(src, {name: want[name]}):
            cmds.append(f"cp {quote(src / name)} {quote(bundle / name)}")
        else:
            cmds = []
            break
    if cmds:
        return cmds + [ctx.install_cmd(d.root, "restart", d.name)]
    return [
        "bash download.sh --verify  # in the package: is its copy intact?",
        ctx.install_cmd(d.root, "remove", d.name),
        ctx.install_cmd(d.root, "install", d.name),
    ]


def checks(ctx: Context) -> Iterable[Result]:
    core = shared.load("bundle", shared.own_package(ctx.package, ctx.diag_dir))
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or d.release is None:
            continue
        models = d.release / "models"
        recorded = d.release_info().get("models") or {}
        if not models.is_dir():
            yield Result(
                deploy_group(d),
                "models",
                FAIL,
                f"{models} is missing",
                [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)],
                deploy=d.name,
                root=str(d.root),
            )
            continue
        if core is None:
            yield Result(
                deploy_group(d),
                "models",
                WARN,
                "model files not checked: no visionpack package found "
                "next to this tool (its bundle module checks them)",
                [f"ls -l {quote(models)}"],
                deploy=d.name,
                root=str(d.root),
            )
            continue
        for bundle in sorted(p for p in models.iterdir() if p.is_dir()):
            rec = recorded.get(bundle.name) if isinstance(recorded, dict) else None
            yield bundle_check(ctx, core, d, bundle, rec if isinstance(rec, dict) else {})
