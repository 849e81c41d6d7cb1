"""Check modules are found, not listed: any module of this package with ``GROUP`` and ``checks``.

A module declares ``ORDER`` (lower runs first; later modules read facts earlier ones
recorded, e.g. HTTP checks skip a deploy whose process is down) and
``checks(ctx) -> Iterable[Result]``. Adding releases/upgrade or Docker checks is therefore
one new file, e.g. ``vp_diag/releases.py`` with ``GROUP = "releases"; ORDER = 45``.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback

from . import __name__ as PKG, __path__ as PKG_PATH
from .core import FAIL, Context, Result


def modules() -> list:
    found = []
    for info in pkgutil.iter_modules(PKG_PATH):
        if info.name.startswith("_"):  # __main__ runs the tool when imported
            continue
        mod = importlib.import_module(f"{PKG}.{info.name}")
        if hasattr(mod, "GROUP") and callable(getattr(mod, "checks", None)):
            found.append(mod)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def run_all(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for mod in modules():
        try:
            results.extend(mod.checks(ctx))
        except Exception as exc:  # one broken check must not hide every other finding
            results.append(
                Result(
                    mod.GROUP,
                    "diagnostics",
                    FAIL,
                    f"the {mod.__name__.rsplit('.', 1)[-1]} checks crashed: {exc!r}",
                    ["bash trouble_shooting/trouble_shooting.sh --bundle  # and send the tarball to support"],
                    traceback.format_exc().splitlines()[-6:],
                )
            )
    return results
