"""Every error code and hint comes from the error classes in errors.py, nowhere else.

The package's source is scanned (ast, so comments and docstrings that name a code for the reader
are not code): no ``.hint =`` assignment (a per-raise hint is a detail or a class of its own), no
EasyDL code written as a literal, and no exception class of its own outside the hierarchy
(private control-flow exceptions, ``_Name``, never reach a client or an operator).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.paths import REPO
from visionpack.errors import all_error_classes

PACKAGE = REPO / "package" / "visionpack"
CODE = re.compile(r"(?<!\d)33(?:6[01]\d\d|7000)(?!\d)")  # 3360xx, 3361xx, 337000
BUILTIN_EXCEPTIONS = {
    "Exception",
    "BaseException",
    "ValueError",
    "RuntimeError",
    "OSError",
    "LookupError",
    "KeyError",
    "TypeError",
    "IOError",
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                ids.add(id(first.value))
    return ids


def problems(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, ast.Attribute) and sub.attr == "hint":
                    out.append(f"{name}:{node.lineno}: assigns .hint")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "setattr"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "hint"
        ):
            out.append(f"{name}:{node.lineno}: setattr(..., 'hint')")
        if isinstance(node, ast.Constant) and id(node) not in docs:
            value = node.value
            if (isinstance(value, int) and not isinstance(value, bool) and CODE.fullmatch(str(value))) or (
                isinstance(value, str) and CODE.search(value)
            ):
                out.append(f"{name}:{node.lineno}: literal EasyDL code {value!r}")
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
            if bases & BUILTIN_EXCEPTIONS:
                out.append(f"{name}:{node.lineno}: exception class {node.name} outside errors.py's hierarchy")
    return out


def _sources(top: Path):
    for path in sorted(top.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path, path.read_text(encoding="utf-8")


def test_no_hint_override_code_literal_or_stray_exception_in_the_package():
    found = []
    for path, text in _sources(PACKAGE):
        if path != PACKAGE / "errors.py":
            found += problems(text, str(path.relative_to(REPO)))
    assert found == []


def test_diagnostics_raise_no_exception_classes_of_their_own():
    # vp_diag reports licensing failures with the package's own LicenseError (loaded by path).
    found = []
    for path, text in _sources(REPO / "trouble_shooting" / "vp_diag"):
        found += [p for p in problems(text, path.name) if "exception class" in p]
    assert found == []


def test_the_scan_finds_what_it_forbids():
    bad = (
        '"""Docstrings may name 336001 for the reader."""\n'
        "err.hint = 'x'\n"
        "a.b.hint += 'y'\n"
        "setattr(err, 'hint', 'z')\n"
        "code = 336000 if easydl else 500\n"
        "msg = f'refused with {337000}'\n"
        "text = 'answered 336100'\n"
        "class Bad(Exception):\n    pass\n"
        "class _Closed(Exception):\n    pass\n"
        "port = 3360\n"
    )
    found = problems(bad, "x.py")
    assert sorted(int(f.split(":", 2)[1]) for f in found) == [2, 3, 4, 5, 6, 7, 8], found


def test_the_codes_it_looks_for_are_the_classes_codes():
    codes = {c.easydl_code for c in all_error_classes()}
    assert {c for c in codes if CODE.fullmatch(str(c))} == {c for c in codes if c >= 336000}
