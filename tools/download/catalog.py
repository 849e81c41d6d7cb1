"""Bundle names listed in package/catalog.yml, read without PyYAML.

verify.py must run with the system python3 before any venv (and so before PyYAML) exists. The
catalog uses a small YAML subset, which is all this reader accepts: block mappings
(``key: value`` / ``key:`` nested by indentation), ``- item`` lists of scalars, comments, plain
or quoted scalars. Flow style (``{...}``, ``[...]``), anchors and multi-line scalars are refused
with CatalogError, so a catalog written beyond the subset fails loudly instead of being misread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CatalogError(Exception):
    pass


def _scalar(text: str, where: str) -> str:
    text = text.strip()
    if text[:1] in ("'", '"'):
        if len(text) < 2 or text[-1] != text[0]:
            raise CatalogError(f"{where}: unterminated quoted scalar")
        return text[1:-1]
    if text[:1] in ("{", "[", "&", "*", "|", ">", "!"):
        raise CatalogError(f"{where}: YAML feature outside the catalog subset: {text!r}")
    return text


def _strip_comment(line: str) -> str:
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def parse(text: str, name: str = "catalog.yml") -> dict[str, Any]:
    """Parse the subset into nested dicts / lists / strings."""
    root: dict[str, Any] = {}
    # stack of (indent, container); a key with no value opens a child whose type the next line decides
    stack: list[tuple[int, Any]] = [(-1, root)]
    pending: tuple[int, dict[str, Any], str] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{name}:{lineno}"
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise CatalogError(f"{where}: tab in indentation")
        line = _strip_comment(raw)
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if pending is not None:
            p_indent, p_parent, p_key = pending
            pending = None
            if indent > p_indent or (indent == p_indent and body.startswith("- ")):
                child: Any = [] if body.startswith("- ") else {}
                p_parent[p_key] = child
                stack.append((indent, child))
            else:
                p_parent[p_key] = None
        is_item = body.startswith("- ") or body == "-"
        # a list may sit at its key's own indentation ("key:\n- a"): a key line there closes it
        while stack and (
            indent < stack[-1][0] or (indent == stack[-1][0] and isinstance(stack[-1][1], list) and not is_item)
        ):
            stack.pop()
        if not stack or indent != stack[-1][0] and stack[-1][0] != -1:
            raise CatalogError(f"{where}: unexpected indentation")
        if stack[-1][0] == -1:
            stack.append((indent, root))
        container = stack[-1][1]
        if is_item:
            if not isinstance(container, list):
                raise CatalogError(f"{where}: list item where a mapping key was expected")
            item = body[1:].strip()
            if ":" in item and item[:1] not in ("'", '"'):
                raise CatalogError(f"{where}: mappings inside lists are outside the catalog subset")
            container.append(_scalar(item, where))
            continue
        if not isinstance(container, dict):
            raise CatalogError(f"{where}: mapping key inside a list")
        key, sep, value = body.partition(":")
        if not sep or (value and not value.startswith(" ")):
            raise CatalogError(f"{where}: expected 'key: value', got {body!r}")
        key = _scalar(key, where)
        if key in container:
            raise CatalogError(f"{where}: duplicate key {key!r}")
        if value.strip():
            container[key] = _scalar(value, where)
        else:
            pending = (indent, container, key)
    if pending is not None:
        pending[1][pending[2]] = None
    return root


def bundle_names(catalog_path: Path | str) -> list[str]:
    """Sorted, de-duplicated bundle directory names of every deploy's ``models`` mapping."""
    path = Path(catalog_path)
    data = parse(path.read_text(encoding="utf-8"), str(path))
    deploys = data.get("deploys")
    if not isinstance(deploys, dict):
        raise CatalogError(f"{path}: no 'deploys' mapping")
    names: set[str] = set()
    for deploy_name, deploy in deploys.items():
        if not isinstance(deploy, dict):
            raise CatalogError(f"{path}: deploy {deploy_name!r} is not a mapping")
        models = deploy.get("models") or {}
        if not isinstance(models, dict):
            raise CatalogError(f"{path}: deploys.{deploy_name}.models is not a role -> bundle mapping")
        for role, bundle in models.items():
            if not isinstance(bundle, str) or not bundle or "/" in bundle or bundle.startswith("."):
                raise CatalogError(f"{path}: deploys.{deploy_name}.models.{role}: bad bundle name {bundle!r}")
            names.add(bundle)
    return sorted(names)
