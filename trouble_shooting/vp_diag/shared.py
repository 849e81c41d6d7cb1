"""The package's standard-library-only modules, loaded by path, so vp_diag shares them instead of copying them.

vp_diag runs on the system python3 with ``-I -S`` (no site-packages), because the runtime venv
may be what is broken. The modules in :data:`MODULES` need nothing but the standard library
(tests/integration/test_stdlib_cores.py runs them so), so a diagnosis uses the product's own
code for them: ``bundle`` (a bundle's files and checksums), ``licensing.license`` (the license
parser, its reason codes, the time limits), ``licensing.fingerprint`` and ``licensing.clock``.

A ``.../package/visionpack`` directory is imported under a name of its own (``vp_diag_pkg<N>``)
whose ``__init__`` does not run: loading one of its modules runs that module and the siblings it
imports (``errors``, ``fsutil``), nothing else of the package, and never another copy of the
package that happens to be importable. No bytecode is written: a diagnosis leaves the releases
it reads as they were.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# What vp_diag loads, and the files they import. build_tar.sh ships exactly these files of the
# package in trouble_shooting.tar (under shared/visionpack/), so a copy unpacked on a server
# without the package still has them.
MODULES = ("bundle", "licensing.license", "licensing.fingerprint", "licensing.clock")
FILES = (
    "__init__.py",
    "errors.py",
    "fsutil.py",
    "bundle.py",
    "licensing/__init__.py",
    "licensing/license.py",
    "licensing/fingerprint.py",
    "licensing/clock.py",
)
SHIPPED = "shared"  # <tar>/shared/visionpack: the tar's own copy of FILES

_aliases: dict[str, str] = {}


def own_package(package: Path | None, diag_dir: Path) -> list[Path]:
    """This tool's own ``visionpack`` directory: the package it sits in, else the copy the tar ships."""
    out = [package / "package" / "visionpack"] if package else []
    return out + [diag_dir / SHIPPED / "visionpack"]


def load(name: str, candidates: Iterable[Path]) -> Any | None:
    """Module ``name`` (e.g. ``"licensing.license"``) of the first ``visionpack`` directory that has
    it and loads; None when none does."""
    rel = name.replace(".", "/") + ".py"
    for pkg in candidates:
        if not (pkg / rel).is_file():
            continue
        saved = sys.dont_write_bytecode
        sys.dont_write_bytecode = True
        try:
            return importlib.import_module(f"{_alias(pkg)}.{name}")
        except Exception:  # a damaged or incompatible copy: try the next one
            continue
        finally:
            sys.dont_write_bytecode = saved
    return None


def _alias(pkg: Path) -> str:
    key = str(pkg.resolve())
    if key not in _aliases:
        alias = f"vp_diag_pkg{len(_aliases)}"
        module = types.ModuleType(alias, f"{key} loaded by path for vp_diag")
        module.__path__ = [key]  # a package whose __init__ never runs: only what is imported from it
        sys.modules[alias] = module
        _aliases[key] = alias
    return _aliases[key]
