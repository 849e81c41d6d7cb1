"""Face routes: PaddleX ``/face-recognition-*`` (seed 001) and EasyDL ``/<deploy>/Face*`` (Baidu style).

Each path names one of the face service's operations (services/face_api.py ``operations``):
its decode/encode pair; the service's single ``predict`` runs whichever request the decode
produced, so routes.handle is used unchanged.
"""

from __future__ import annotations

# (endpoint, path with {deploy}, the service's operation): api/routes.py operation_blueprint
ROUTES = (
    ("paddlex_face_build", "/face-recognition-index-build", "paddlex.build"),
    ("paddlex_face_add", "/face-recognition-index-add", "paddlex.add"),
    ("paddlex_face_remove", "/face-recognition-index-remove", "paddlex.remove"),
    ("paddlex_face_delete", "/face-recognition-index-delete", "paddlex.delete"),
    ("paddlex_face_infer", "/face-recognition-infer", "paddlex.infer"),
    ("easydl_face_search", "/{deploy}/FaceRecognition", "easydl.search"),
    ("easydl_face_add", "/{deploy}/FaceGallery/add", "easydl.add"),
    ("easydl_face_remove", "/{deploy}/FaceGallery/remove", "easydl.remove"),
    ("easydl_face_list", "/{deploy}/FaceGallery/list", "easydl.list"),
    ("easydl_face_group_delete", "/{deploy}/FaceGallery/group/delete", "easydl.group_delete"),
    ("easydl_face_crops", "/{deploy}/FaceGallery/crops", "easydl.crops"),
)
