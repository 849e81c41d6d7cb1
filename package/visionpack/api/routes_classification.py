"""Classification routes: EasyDL ``/<deploy>/ImageClassification`` and PaddleX ``/image-classification``."""

from __future__ import annotations

# (endpoint, path with {deploy}, the service's operation): api/routes.py operation_blueprint
ROUTES = (
    ("easydl_classify", "/{deploy}/ImageClassification", "easydl.classify"),
    ("paddlex_classify", "/image-classification", "paddlex.classify"),
)
