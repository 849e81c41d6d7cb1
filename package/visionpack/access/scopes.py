"""Which scope each API route needs.

Routes are named in api/routes_<service>.py and passed to api.routes.handle. Inference routes
are listed here by name; any other route that goes through ``handle`` is a gallery route (fail
closed: a new face operation is loopback-only by default until someone lists it as inference).
"""

from __future__ import annotations

INFER = "infer"
GALLERY = "gallery"
OPS = "ops"

# Reading an image and answering about it, incl. face recognition (search the gallery, not change it).
INFER_ROUTES = frozenset(
    {
        "easydl_classify",
        "paddlex_classify",
        "easydl_keypoint",
        "paddlex_keypoint",
        "easydl_predict",
        "easydl_face_search",
        "paddlex_face_infer",
    }
)


def route_scope(route: str) -> str:
    """``infer`` for the inference routes, ``gallery`` for every other route using ``handle``."""
    return INFER if route in INFER_ROUTES else GALLERY
