"""The package's layers (docs/design.md "Architecture"): no module imports past its layer.

Every import counts, lazy ones included (tools/dev/imports.py builds the graph). A new edge that
breaks the table fails here; the exceptions are listed, each with what would remove it.
"""

from __future__ import annotations

import importlib.util

from tests.paths import REPO

_spec = importlib.util.spec_from_file_location("vp_imports", REPO / "tools" / "dev" / "imports.py")
imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imports)

CORE = {"errors", "config", "bundle", "fsutil", "logs", "imaging"}
ENTRY_POINTS = {"visionpack.installer.cli", "visionpack.gallery.cli", "visionpack.gallery.__main__"}
# layer -> the layers it may import (itself always)
ALLOWED = {
    "core": {"core"},
    "handover": {"core", "licensing"},
    "licensing": {"core"},
    "inference": {"core"},
    "gallery": {"core"},
    "access": {"core"},
    "services": {"core", "inference", "gallery"},
    "api": {"core", "services", "access", "licensing", "inference", "handover"},
    "installer": {"core", "licensing", "access", "handover"},
}
# (importing module, imported module prefix): why it is allowed, and what would remove it.
EXCEPTIONS = {
    (
        "visionpack.gallery.",
        "visionpack.services.fields",
    ): "the shared request-field validators; moving fields.py to core removes it",
    ("visionpack.gallery.index", "visionpack.services"): "the validators' package import; same as above",
    (
        "visionpack.access.store",
        "visionpack.installer",
    ): "the installer-side key store chowns for the service user; serviceuser in core removes it",
    (
        "visionpack.api.console.overview",
        "visionpack.installer",
    ): "the overview reads state.json read-only; a read-only state reader in core removes it",
}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # visionpack/__init__.py
    return "core" if parts[1] in CORE else parts[1]


def _excepted(src: str, dst: str) -> bool:
    return any(src.startswith(a) and dst.startswith(b) for a, b in EXCEPTIONS)


def test_no_module_imports_past_its_layer():
    bad = []
    for src, dsts in imports.graph().items():
        if src in ENTRY_POINTS:
            continue
        for dst in dsts:
            ls, ld = layer(src), layer(dst)
            if ld != ls and ld not in ALLOWED[ls] and not _excepted(src, dst):
                bad.append(f"{src} ({ls}) -> {dst} ({ld})")
    assert bad == [], "\n".join(sorted(bad))


def test_every_layer_is_in_the_table_and_every_exception_is_still_needed():
    graph = imports.graph()
    assert {layer(m) for m in graph} <= set(ALLOWED)
    for a, b in EXCEPTIONS:
        assert any(src.startswith(a) and any(d.startswith(b) for d in dsts) for src, dsts in graph.items()), (
            f"exception {a} -> {b} is no longer used: remove it from EXCEPTIONS"
        )


def test_the_layer_check_catches_a_forbidden_edge():
    assert layer("visionpack.inference.engine") == "inference" and layer("visionpack.config") == "core"
    assert "api" not in ALLOWED["installer"] and "services" not in ALLOWED["inference"]
