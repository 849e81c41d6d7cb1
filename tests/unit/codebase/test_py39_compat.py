"""Everything that runs on the operator's python and in the installed runtime parses and imports on
CPython 3.9 (Debian 11, RHEL 9; issue 18): package/, trouble_shooting/ and vendor/.

ruff's per-file target (py39, pyproject.toml) reports syntax 3.9 cannot parse, but not a `X | Y`
union that is *evaluated* at run time (a module-level type alias, an isinstance or cast argument,
a subscript of typing.Callable): with `from __future__ import annotations` only annotations are
strings, everything else raises TypeError on 3.9 at import. This scan finds those; the real 3.9
run is the Debian 11 case of tests/e2e/test_debian_matrix.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

ROOTS = ("package", "trouble_shooting", "vendor")
# Names that are types when they appear in `a | b` (capitalised names: classes, typing aliases).
BUILTIN_TYPES = {"int", "str", "float", "bytes", "bool", "dict", "list", "tuple", "set", "frozenset", "type", "object"}


def _typish(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, str)  # None, or a forward reference
    if isinstance(node, ast.Name):
        return node.id in BUILTIN_TYPES or (node.id[:1].isupper() and not node.id.isupper())
    if isinstance(node, ast.Subscript):
        return _typish(node.value)
    if isinstance(node, ast.Attribute):  # os.PathLike, np.ndarray; not os.O_RDONLY
        return node.attr[:1].isupper() and not node.attr.isupper() or node.attr == "ndarray"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _typish(node.left) and _typish(node.right)
    return False


def runtime_unions(source: str, filename: str) -> list[str]:
    """`X | Y` of types outside annotations, as 'file:line: expr'."""
    tree = ast.parse(source, filename, feature_version=(3, 9))
    in_annotation: set[int] = set()
    for node in ast.walk(tree):
        for field in ("annotation", "returns"):
            sub = getattr(node, field, None)
            if isinstance(sub, ast.AST):
                in_annotation.update(id(n) for n in ast.walk(sub))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.BitOr)
            and id(node) not in in_annotation
            and _typish(node.left)
            and _typish(node.right)
        ):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def _files() -> list[Path]:
    return sorted(p for root in ROOTS for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_scan_finds_runtime_unions_and_spares_annotations() -> None:
    code = (
        "from __future__ import annotations\n"
        "Alias = int | str\n"
        "def f(x: int | None) -> str | None:\n"
        "    flags = os.O_RDONLY | os.O_NOFOLLOW\n"
        "    return isinstance(x, (int | float))\n"
    )
    assert runtime_unions(code, "m.py") == ["m.py:2: int | str", "m.py:5: int | float"]


def test_runtime_code_has_no_3_10_unions_and_parses_as_3_9() -> None:
    files = _files()
    assert len(files) > 100
    found = [hit for p in files for hit in runtime_unions(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))]
    assert not found, "use typing.Union/Optional where the expression is evaluated at run time: " + "; ".join(found)


def test_every_module_has_postponed_annotations() -> None:
    # `X | None` in a signature is only safe on 3.9 as a string: the future import makes it one.
    missing = []
    for p in _files():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        has_annotations = any(
            getattr(n, "returns", None) is not None or getattr(n, "annotation", None) is not None
            for n in ast.walk(tree)
            if not isinstance(n, ast.arg) or n.annotation is not None
        )
        future = any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
            for n in tree.body
        )
        text = p.read_text(encoding="utf-8")
        if has_annotations and not future and "|" in text:
            missing.append(str(p.relative_to(REPO)))
    assert not missing, "add 'from __future__ import annotations' to: " + ", ".join(missing)
