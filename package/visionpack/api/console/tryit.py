"""The "try it" form: which of the service's routes the page calls, with which parameters, and
how the answer is drawn; and the gallery routes the gallery page calls.

Forms are picked by the operations the service offers (services/protocol.py ``operations``),
never by its name: a service with ``easydl.classify`` gets the classification form, whatever
it is called. Each form names the route's own parameters (the names its decode reads), so the
page sends exactly what a client would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    name: str  # the JSON field of the route
    label: str
    kind: str  # int | number | text: how the page converts the input
    default: str = ""  # "" leaves the field out: the service's own default applies
    lo: str = ""
    hi: str = ""
    step: str = "any"
    hint: str = ""


@dataclass(frozen=True)
class TryForm:
    operation: str
    draw: str  # classes | persons | faces: the drawing console's draw.js applies to the answer
    params: tuple[Param, ...]
    fixed: Mapping[str, Any]  # sent with every request (no result image: the page draws)
    path: str = ""


FORMS = (
    TryForm(
        "easydl.classify",
        "classes",
        (Param("top_num", "top_num (results)", "int", "5", "1", "100", "1", "how many classes to return"),),
        {},
    ),
    TryForm(
        "paddlex.keypoint",
        "persons",
        (
            Param(
                "detThreshold",
                "detThreshold",
                "number",
                "",
                "0",
                "1",
                "0.05",
                "person detector score; empty: the model's",
            ),
        ),
        {"visualize": False},
    ),
    TryForm(
        "paddlex.infer",
        "faces",
        (
            Param("indexKey", "indexKey (gallery index)", "text", "default", hint="the index to search"),
            Param(
                "detThreshold",
                "detThreshold",
                "number",
                "",
                "0",
                "1",
                "0.05",
                "face detector score; empty: the service's",
            ),
            Param(
                "recThreshold",
                "recThreshold",
                "number",
                "",
                "-4",
                "4",
                "0.01",
                "similarity a match needs; empty: the service's calibrated value",
            ),
            Param("topk", "topk (labels per face)", "int", "3", "1", "100", "1"),
        ),
        {"visualize": False},
    ),
)

# The gallery page's calls, by operation (routes_face.py maps them to paths).
GALLERY_OPERATIONS = {
    "list": "easydl.list",
    "add": "easydl.add",
    "remove": "easydl.remove",
    "crops": "easydl.crops",
    "delete": "easydl.group_delete",
    "search": "paddlex.infer",
}


def paths_of(routes: Sequence[tuple[str, str, str]], deploy: str) -> dict[str, str]:
    """operation -> path of a routes table (``(endpoint, path, operation)``, api/routes_<service>.py)."""
    return {op: path.format(deploy=deploy) for _endpoint, path, op in routes}


def try_form(paths: Mapping[str, str]) -> TryForm | None:
    for form in FORMS:
        if form.operation in paths:
            return TryForm(form.operation, form.draw, form.params, form.fixed, paths[form.operation])
    return None


def gallery_paths(paths: Mapping[str, str]) -> dict[str, str] | None:
    """The gallery page's routes, or None when the service has no face gallery."""
    if not all(op in paths for op in GALLERY_OPERATIONS.values()):
        return None
    return {name: paths[op] for name, op in GALLERY_OPERATIONS.items()}
