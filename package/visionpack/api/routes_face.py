"""Face routes: PaddleX ``/face-recognition-*`` (seed 001) and EasyDL ``/<deploy>/Face*`` (Baidu style).

Each view names its operation's decode/encode; the service's single ``predict`` runs whichever
request the decode produced (services/face.py), so routes.handle is used unchanged.
"""

from __future__ import annotations

from flask import Blueprint

from .routes import handle, worker

# (route name, dialect, path, operation)
ROUTES = (
    ("paddlex_face_build", "paddlex", "/face-recognition-index-build", "build"),
    ("paddlex_face_add", "paddlex", "/face-recognition-index-add", "add"),
    ("paddlex_face_remove", "paddlex", "/face-recognition-index-remove", "remove"),
    ("paddlex_face_delete", "paddlex", "/face-recognition-index-delete", "delete"),
    ("paddlex_face_infer", "paddlex", "/face-recognition-infer", "infer"),
    ("easydl_face_search", "easydl", "/{deploy}/FaceRecognition", "search"),
    ("easydl_face_add", "easydl", "/{deploy}/FaceGallery/add", "add"),
    ("easydl_face_remove", "easydl", "/{deploy}/FaceGallery/remove", "remove"),
    ("easydl_face_list", "easydl", "/{deploy}/FaceGallery/list", "list"),
    ("easydl_face_group_delete", "easydl", "/{deploy}/FaceGallery/group/delete", "group_delete"),
)


def _view(name: str, dialect: str, op: str):
    def view():
        s = worker().service
        return handle(name, dialect, getattr(s, f"decode_{dialect}_{op}"), getattr(s, f"encode_{dialect}_{op}"))

    view.__name__ = name
    return view


def blueprint(deploy: str) -> Blueprint:
    bp = Blueprint("face", __name__)
    for name, dialect, path, op in ROUTES:
        bp.add_url_rule(path.format(deploy=deploy), endpoint=name, view_func=_view(name, dialect, op), methods=["POST"])
    return bp
