"""Each model's chosen inference backend loads in the deploy's runtime and agrees with the bundle's parity record.

The backend is the one the release's workers run (inference/engine.py backend_for: the config's
choice, else what install/upgrade measured, else the bundle's own format); the check loads it in
the runtime venv, in a subprocess with a timeout, and compares its outputs on the bundle's
``parity.npz`` with Paddle's (the tolerance from the manifest), as ``backend: auto`` did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import venv_exec
from .core import FAIL, PASS, WARN, Context, Deploy, Result, deploy_group

GROUP = "backends"
ORDER = 95  # after deps: a runtime whose imports fail is reported there
TIMEOUT = 300.0  # loading every model of a deploy, Paddle included, on 2 shared cores

CODE = r"""
from visionpack import config
from visionpack.inference import autotune
from visionpack.inference.engine import backend_for, create_engine
try:  # a PaddleX bundle, or an Ultralytics export as `yolo export` wrote it (a YOLOv8-pose deploy's model)
    from visionpack.services.pose import load_model as load_bundle
except ImportError:  # a release older than the one-stage pose pipeline
    from visionpack.bundle import load_bundle
try:
    cfg = config.load(sys.argv[2], env={})
except Exception as exc:  # the release check's business; this check cannot run without it
    print(json.dumps({"": {"config_error": f"{type(exc).__name__}: {exc}"[:300]}}))
    sys.exit(0)
res = {}
for role, path in sorted(cfg.models.items()):
    try:
        b = load_bundle(path)
        kind = backend_for(b, cfg)
        if b.parity is None:
            create_engine(b, cfg)
            res[role] = {"backend": kind, "ok": True, "note": "loads (no parity record to compare with)"}
        else:
            got = autotune.measure_model(b, cfg, kind, timed=False)
            res[role] = {"backend": kind, **{k: got.get(k) for k in ("ok", "why", "max_abs_diff", "precision")}}
    except Exception as exc:
        res[role] = {"backend": None, "ok": False, "why": f"{type(exc).__name__}: {exc}"[:300]}
print(json.dumps(res))
"""


def verdict(ctx: Context, d: Deploy, res: Any, err: str) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    tune = ctx.install_cmd(d.root, "tune", d.name)
    if not isinstance(res, dict):
        return Result(g, "backends", FAIL, f"cannot check the models' backends: {err}", [tune], **kw)
    broken = (res.get("") or {}).get("config_error")
    if broken:  # a config the service would refuse: reported as such, not as a backend failure
        return Result(g, "backends", WARN, f"not checked: the release's config.yml does not load ({broken})", [], **kw)
    lines = [
        f"{role}: {r.get('backend')} "
        + (f"agrees (max abs diff {r['max_abs_diff']:.2g})" if r.get("max_abs_diff") is not None else "")
        + (r.get("note") or "")
        + ("" if r.get("ok") else f"FAILS: {r.get('why')}")
        for role, r in sorted(res.items())
    ]
    bad = [role for role, r in sorted(res.items()) if not r.get("ok")]
    if bad:
        fix = [
            f"{tune}  # measure again: a backend that fails or disagrees is not chosen",
            f"# or set 'backend: paddle' (or model_backends) in {d.release}/config.yml and restart",
        ]
        return Result(g, "backends", FAIL, f"backend of {', '.join(bad)} does not load or agree", fix, lines, **kw)
    chosen = ", ".join(f"{role} {r.get('backend')}" for role, r in sorted(res.items()))
    return Result(g, "backends", PASS, f"every model loads and agrees on its backend ({chosen})", [], lines, **kw)


def backends_check(ctx: Context, d: Deploy) -> Result:
    rt, release = d.runtime, d.release
    assert rt is not None and release is not None
    res, err = venv_exec.run(
        rt / "bin" / "python", release / "package", CODE, [str(release / "config.yml")], timeout=TIMEOUT
    )
    return verdict(ctx, d, res, err)


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        if ctx.deploy_fact(d, "broken") or d.runtime is None or d.release is None:
            continue
        yield backends_check(ctx, d)
