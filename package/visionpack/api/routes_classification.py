"""Classification routes: EasyDL ``/<deploy>/ImageClassification`` and PaddleX ``/image-classification``."""

from __future__ import annotations

from flask import Blueprint

from .routes import handle, worker


def blueprint(deploy: str) -> Blueprint:
    bp = Blueprint("classification", __name__)

    @bp.post(f"/{deploy}/ImageClassification")
    def easydl_classify():
        s = worker().service
        return handle("easydl_classify", "easydl", s.decode_easydl, s.encode_easydl)

    @bp.post("/image-classification")
    def paddlex_classify():
        s = worker().service
        return handle("paddlex_classify", "paddlex", s.decode_paddlex, s.encode_paddlex)

    return bp
