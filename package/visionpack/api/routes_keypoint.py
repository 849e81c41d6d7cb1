"""Keypoint routes: EasyDL ``/<deploy>/HumanKeypointDetection``, PaddleX ``/human-keypoint-detection``, and
``/<deploy>/predict`` (Ultralytics' Results.to_json() shape in EasyDL's envelope)."""

from __future__ import annotations

# (endpoint, path with {deploy}, the service's operation): api/routes.py operation_blueprint
ROUTES = (
    ("easydl_keypoint", "/{deploy}/HumanKeypointDetection", "easydl.keypoint"),
    ("paddlex_keypoint", "/human-keypoint-detection", "paddlex.keypoint"),
    ("easydl_predict", "/{deploy}/predict", "easydl.predict"),
)
