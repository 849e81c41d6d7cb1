"""Python dependencies importable in each deploy's runtime venv (in a subprocess, with a timeout)."""

from __future__ import annotations

from collections.abc import Iterable

from . import deploys as deploys_mod, venv_exec
from .core import FAIL, PASS, Context, Deploy, Result, deploy_group, quote

GROUP = "deps"
ORDER = 90
COMMON = ["numpy", "cv2", "yaml", "flask", "gunicorn", "cryptography", "paddle", "onnxruntime", "openvino"]
BY_SERVICE: dict[str, list[str]] = {"face": ["faiss"]}
# Our own modules last: they pull the third-party ones in, so a failure there names the culprit.
OWN = ["visionpack.licensing.admin", "visionpack.api.app"]
TIMEOUT = 180.0  # importing paddle takes seconds on a cold page cache; 2 shared cores are slow

CODE = r"""
import importlib, traceback
res = {}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
        res[name] = None
    except BaseException as exc:
        res[name] = f"{type(exc).__name__}: {exc}"[:300]
print(json.dumps(res))
"""


def modules_for(service: str) -> list[str]:
    return COMMON + BY_SERVICE.get(service, []) + OWN


def deps_check(ctx: Context, d: Deploy) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    rt = d.runtime
    assert rt is not None and d.release is not None
    mods = modules_for(d.service)
    res, err = venv_exec.run(rt / "bin" / "python", d.release / "package", CODE, mods, timeout=TIMEOUT)
    fix = deploys_mod.rebuild_runtime(ctx, d, rt)
    if not isinstance(res, dict):
        return Result(g, "python-deps", FAIL, f"runtime broken: {err}", fix, **kw)
    bad = {m: e for m, e in res.items() if e}
    if bad:
        lines = [f"{m}: {e}" for m, e in bad.items()]
        fix = [f"{quote(rt / 'bin' / 'python')} -c 'import {next(iter(bad))}'  # to see the full error"] + fix
        # Only our own modules failing means the release's package is damaged, not the venv.
        if all(m.startswith("visionpack.") for m in bad):
            fix = [ctx.install_cmd(d.root, "remove", d.name), ctx.install_cmd(d.root, "install", d.name)]
        return Result(
            g,
            "python-deps",
            FAIL,
            f"{len(bad)} of {len(mods)} module(s) do not import in {rt}: {', '.join(bad)}",
            fix,
            lines,
            **kw,
        )
    return Result(
        g, "python-deps", PASS, f"{', '.join(m for m in mods if '.' not in m)} and our package import in {rt}", **kw
    )


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or d.runtime is None:
            continue
        yield deps_check(ctx, d)
