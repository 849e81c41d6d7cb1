"""Keypoint routes: EasyDL ``/<deploy>/HumanKeypointDetection`` and PaddleX ``/human-keypoint-detection``."""

from __future__ import annotations

from flask import Blueprint

from .routes import handle, worker


def blueprint(deploy: str) -> Blueprint:
    bp = Blueprint("keypoint", __name__)

    @bp.post(f"/{deploy}/HumanKeypointDetection")
    def easydl_keypoint():
        s = worker().service
        return handle("easydl_keypoint", "easydl", s.decode_easydl, s.encode_easydl)

    @bp.post("/human-keypoint-detection")
    def paddlex_keypoint():
        s = worker().service
        return handle("paddlex_keypoint", "paddlex", s.decode_paddlex, s.encode_paddlex)

    return bp
