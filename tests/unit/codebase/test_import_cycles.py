"""No import cycle anywhere in package/visionpack, lazy (function-level) imports included.

The graph is tools/dev/imports.py's, loaded by path so the test and the developer tool
cannot disagree about what an edge is.
"""

from __future__ import annotations

import importlib.util
import sys

from tests.paths import REPO


def _imports_tool():
    spec = importlib.util.spec_from_file_location("dev_imports", REPO / "tools" / "dev" / "imports.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dev_imports", mod)
    spec.loader.exec_module(mod)
    return mod


def test_the_package_has_no_import_cycle():
    tool = _imports_tool()
    edges = tool.graph()
    assert "visionpack.installer.switch" in edges and "visionpack.installer.runtimes.kinds" in edges  # the real tree
    assert tool.cycles(edges) == []


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    pkg = tmp_path / "visionpack"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import c\n")
    (pkg / "sub" / "c.py").write_text("from ..a import thing\n")
    (pkg / "d.py").write_text("from .a import thing\n")  # into the cycle, not part of it
    tool = _imports_tool()
    assert tool.cycles(tool.graph(pkg)) == [["visionpack.a", "visionpack.b", "visionpack.sub.c"]]
