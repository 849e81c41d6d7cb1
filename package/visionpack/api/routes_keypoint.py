"""Keypoint routes: EasyDL ``/<deploy>/HumanKeypointDetection`` and PaddleX ``/human-keypoint-detection``."""

from __future__ import annotations

# (endpoint, path with {deploy}, the service's operation): api/routes.py operation_blueprint
ROUTES = (
    ("easydl_keypoint", "/{deploy}/HumanKeypointDetection", "easydl.keypoint"),
    ("paddlex_keypoint", "/human-keypoint-detection", "paddlex.keypoint"),
)
