"""The face service's wire formats: decode/encode per operation, both dialects.

PaddleX (seed 001, face_recognition serving): ``/face-recognition-index-build`` ``{imageLabelPairs}``
-> ``{indexKey, idMap}``; ``-index-add`` ``{imageLabelPairs, indexKey?}`` -> ``{idMap}``;
``-index-remove`` ``{ids, indexKey?}`` -> ``{idMap}``; ``-infer`` ``{image, indexKey?, detThreshold?,
recThreshold?, topk?, visualize?}`` -> ``{faces: [{bbox, recResults: [{label, score}], score}], image?}``.
``idMap`` is the whole index after the operation (id -> label), as PaddleX returns it.

EasyDL (Baidu face-search style, under ``/<deploy>/``): ``FaceRecognition`` (M:N search:
``face_num``, ``face_list[{location, face_probability, landmark, user_list[{group_id, user_id,
score}]}]``), ``FaceGallery/add|remove|list``. ``group_id`` is the index key (default index when
absent); ``user_id`` is the label; ``face_id`` the gallery id.

Deleting an index key (not in PaddleX; Baidu's face API has ``group/delete``):
``/face-recognition-index-delete`` ``{indexKey}`` -> ``{indexKey, removedFaces}`` and
``FaceGallery/group/delete`` ``{group_id}`` -> ``{result: {group_id, removed_faces}}``; the key
must be named, and the default index is emptied rather than removed.

Reading stored crops (the operator console's thumbnails; gallery scope like ``list``):
``FaceGallery/crops`` ``{group_id?, face_ids}`` -> ``{result: {group_id, crops: [{face_id, image}],
missing}}``, ``image`` the aligned chip as base64 PNG, ``missing`` the ids the index does not hold.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidArgument, MissingParameter
from ..gallery import DEFAULT_INDEX
from ..gallery.store import check_key, check_label, unknown_index
from ..imaging import ImageLimits, encode_jpeg_b64
from . import fields
from .protocol import Operation

MAX_PAIRS = 100
MAX_LIST = 1000
MAX_IDS = 10_000  # ids in one remove: one transaction, kept short for the other writers
MAX_CROPS = 100  # crops in one answer: a page of thumbnails, each a few KB of PNG


# --- field readers beyond services/fields.py: the gallery's own ---------------------------


def _key(body: dict, name: str) -> str:
    v = body.get(name)
    return DEFAULT_INDEX if v is None or v == "" else check_key(v)


def _ids(body: dict, name: str, required: bool = True) -> list[int] | None:
    # Gallery ids are handed out from 0 upwards; every store keeps them as signed 64-bit integers.
    return fields.int_list(body, name, required=required, max_items=MAX_IDS, lo=0)


@dataclass(frozen=True)
class InferReq:
    image: np.ndarray
    key: str
    det_threshold: float | None
    rec_threshold: float | None
    topk: int
    visualize: bool

    def run(self, svc: Any) -> InferResult:
        faces = svc.recognise(self.image, self.key, self.det_threshold, self.rec_threshold, self.topk)
        return InferResult(faces, encode_jpeg_b64(draw_faces(self.image, faces)) if self.visualize else None, self.key)


@dataclass(frozen=True)
class InferResult:
    faces: list
    image: str | None
    key: str


@dataclass(frozen=True)
class EnrollReq:
    pairs: list[tuple[np.ndarray, str]]
    key: str | None  # None: a new index (build)
    create: bool  # EasyDL add creates its group on first use, as Baidu's user/add does

    def run(self, svc: Any) -> EnrollResult:
        faces, found = svc.new_faces(self.pairs)
        if self.key is None:
            key, ids = svc.gallery.build(faces)
        else:
            if self.create:
                svc.gallery.ensure(self.key)
            key, ids = self.key, svc.gallery.add(self.key, faces)
        if self.create:
            # EasyDL's answer names only the faces it added: no read after the commit, so a
            # gallery database lost right after it cannot turn a committed add into an error.
            return EnrollResult(key, ids, found, {i: label for i, (_, label) in zip(ids, self.pairs)})
        return EnrollResult(key, ids, found, svc.gallery.id_map(key))


@dataclass(frozen=True)
class EnrollResult:
    key: str
    ids: list[int]
    found: list
    id_map: dict[int, str]


@dataclass(frozen=True)
class RemoveReq:
    key: str
    ids: list[int] | None
    label: str | None

    def run(self, svc: Any) -> RemoveResult:
        gone = []
        if self.ids:
            gone += svc.gallery.remove(self.key, self.ids)
        if self.label is not None:
            gone += svc.gallery.remove_label(self.key, self.label)
        return RemoveResult(self.key, gone, svc.gallery.id_map(self.key))


@dataclass(frozen=True)
class RemoveResult:
    key: str
    removed: list[int]
    id_map: dict[int, str]


@dataclass(frozen=True)
class ListReq:
    key: str
    label: str | None
    start: int
    length: int

    def run(self, svc: Any) -> dict[str, Any]:
        total, page = svc.gallery.list_faces(self.key, self.label, self.start, self.length)
        return {
            "group_id": self.key,
            "face_num": total,
            "group_id_list": svc.gallery.keys(),
            "face_list": [{"face_id": p["id"], "user_id": p["label"], "ctime": round(p["created"], 3)} for p in page],
        }


@dataclass(frozen=True)
class DeleteReq:
    """Delete an index key with all its faces (the default index is emptied, not removed)."""

    key: str

    def run(self, svc: Any) -> DeleteResult:
        return DeleteResult(self.key, svc.gallery.delete(self.key))


@dataclass(frozen=True)
class DeleteResult:
    key: str
    faces: int


@dataclass(frozen=True)
class CropsReq:
    """Stored aligned crops of some faces of an index (the console's thumbnails)."""

    key: str
    ids: list[int]

    def run(self, svc: Any) -> dict[str, Any]:
        if self.key not in svc.gallery.keys():  # noqa: SIM118  (Gallery.keys() reads the store; a Gallery is no mapping)
            raise unknown_index(self.key)
        crops, missing = [], []
        for face_id in self.ids:
            try:
                png = svc.gallery.crop(self.key, face_id)
            except InvalidArgument:  # removed meanwhile (by another client): said, not an error
                missing.append(face_id)
                continue
            crops.append({"face_id": face_id, "image": base64.b64encode(png).decode("ascii")})
        return {"group_id": self.key, "crops": crops, "missing": missing}


def _required_key(body: dict, name: str) -> str:
    # Deleting is never aimed at the default index by omission: the key must be named.
    return check_key(fields.required(body, name))


class CodecOptions(Protocol):
    """What the codec reads of face.Options (face.py imports this module, not the reverse)."""

    @property
    def topk(self) -> int: ...
    @property
    def visualize_paddlex(self) -> bool: ...
    @property
    def visualize_easydl(self) -> bool: ...
    @property
    def max_faces(self) -> int: ...


class FaceCodec:
    """Mixed into FaceService: needs ``self.limits``, ``self.opts``."""

    limits: ImageLimits
    opts: CodecOptions

    def operations(self) -> dict[str, Operation]:
        """Every wire operation, by name (api/routes_face.py maps paths to these names)."""
        return {
            "paddlex.infer": Operation("paddlex", self.decode_paddlex_infer, self.encode_paddlex_infer),
            "paddlex.build": Operation("paddlex", self.decode_paddlex_build, self.encode_paddlex_build),
            "paddlex.add": Operation("paddlex", self.decode_paddlex_add, self.encode_paddlex_add),
            "paddlex.remove": Operation("paddlex", self.decode_paddlex_remove, self.encode_paddlex_remove),
            "paddlex.delete": Operation("paddlex", self.decode_paddlex_delete, self.encode_paddlex_delete),
            "easydl.search": Operation("easydl", self.decode_easydl_search, self.encode_easydl_search),
            "easydl.add": Operation("easydl", self.decode_easydl_add, self.encode_easydl_add),
            "easydl.remove": Operation("easydl", self.decode_easydl_remove, self.encode_easydl_remove),
            "easydl.list": Operation("easydl", self.decode_easydl_list, self.encode_easydl_list),
            "easydl.group_delete": Operation(
                "easydl", self.decode_easydl_group_delete, self.encode_easydl_group_delete
            ),
            "easydl.crops": Operation("easydl", self.decode_easydl_crops, self.encode_easydl_list),  # {"result": ...}
        }

    def _image(self, value: Any, what: str = "image") -> np.ndarray:
        return fields.image(value, self.limits, what)

    def _pairs(self, body: dict) -> list[tuple[np.ndarray, str]]:
        pairs = body.get("imageLabelPairs")
        if pairs is None:
            raise MissingParameter("'imageLabelPairs' is required")
        if not isinstance(pairs, list) or not pairs or len(pairs) > MAX_PAIRS:
            raise InvalidArgument(
                f"'imageLabelPairs' must be an array of 1..{MAX_PAIRS} objects, got {fields.preview(pairs)}"
            )
        out = []
        for n, p in enumerate(pairs):
            if not isinstance(p, dict):
                raise InvalidArgument(f"imageLabelPairs[{n}] must be an object with 'image' and 'label'")
            if p.get("label") is None:
                raise MissingParameter(f"imageLabelPairs[{n}].label is required")
            label = check_label(p["label"])
            out.append((self._image(p.get("image"), f"imageLabelPairs[{n}].image"), label))
        return out

    # --- PaddleX ------------------------------------------------------------------------
    def decode_paddlex_infer(self, body: dict) -> InferReq:
        # hammingRadius belongs to binary indexes, which this service does not build; ignored.
        return InferReq(
            self._image(body.get("image")),
            _key(body, "indexKey"),
            fields.number(body, "detThreshold"),
            fields.number(body, "recThreshold"),
            fields.integer(body, "topk", self.opts.topk, hi=100),
            fields.boolean(body, "visualize", self.opts.visualize_paddlex),
        )

    def encode_paddlex_infer(self, res: InferResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "faces": [
                {
                    "bbox": [round(v, 2) for v in f.box],
                    "recResults": [{"label": h.label, "score": round(h.score, 5)} for h in f.hits],
                    "score": round(f.score, 5),
                }
                for f in res.faces
            ]
        }
        if res.image is not None:
            out["image"] = res.image
        return out

    def decode_paddlex_build(self, body: dict) -> EnrollReq:
        return EnrollReq(self._pairs(body), None, False)

    @staticmethod
    def encode_paddlex_build(res: EnrollResult) -> dict[str, Any]:
        return {"indexKey": res.key, "idMap": {str(k): v for k, v in res.id_map.items()}}

    def decode_paddlex_add(self, body: dict) -> EnrollReq:
        key = _key(body, "indexKey")
        return EnrollReq(self._pairs(body), key, False)

    @staticmethod
    def encode_paddlex_add(res: EnrollResult | RemoveResult) -> dict[str, Any]:
        return {"idMap": {str(k): v for k, v in res.id_map.items()}}

    def decode_paddlex_remove(self, body: dict) -> RemoveReq:
        return RemoveReq(_key(body, "indexKey"), _ids(body, "ids"), None)

    encode_paddlex_remove = encode_paddlex_add

    @staticmethod
    def decode_paddlex_delete(body: dict) -> DeleteReq:
        return DeleteReq(_required_key(body, "indexKey"))

    @staticmethod
    def encode_paddlex_delete(res: DeleteResult) -> dict[str, Any]:
        return {"indexKey": res.key, "removedFaces": res.faces}

    # --- EasyDL (Baidu face search style) ----------------------------------------------
    def decode_easydl_search(self, body: dict) -> _Limited:
        req = InferReq(
            self._image(body.get("image")),
            _key(body, "group_id"),
            None,
            fields.number(body, "match_threshold"),
            fields.integer(body, "max_user_num", 1, hi=50),
            fields.boolean(body, "visualize", self.opts.visualize_easydl),
        )
        return _Limited(req, fields.integer(body, "max_face_num", None, hi=self.opts.max_faces))

    def encode_easydl_search(self, res: InferResult) -> dict[str, Any]:
        faces = []
        for f in res.faces:
            x1, y1, x2, y2 = f.box
            item: dict[str, Any] = {
                "location": {
                    "left": round(x1, 2),
                    "top": round(y1, 2),
                    "width": round(x2 - x1, 2),
                    "height": round(y2 - y1, 2),
                },
                "face_probability": round(f.score, 5),
                "user_list": [{"group_id": res.key, "user_id": h.label, "score": round(h.score, 5)} for h in f.hits],
            }
            if f.landmarks is not None:
                item["landmark"] = [{"x": round(float(x), 2), "y": round(float(y), 2)} for x, y in f.landmarks]
            faces.append(item)
        out: dict[str, Any] = {"result": {"face_num": len(faces), "face_list": faces}}
        if res.image is not None:
            out["image"] = res.image
        return out

    def decode_easydl_add(self, body: dict) -> EnrollReq:
        if body.get("user_id") is None:
            raise MissingParameter("'user_id' is required")
        label = check_label(body["user_id"])
        return EnrollReq([(self._image(body.get("image")), label)], _key(body, "group_id"), True)

    @staticmethod
    def encode_easydl_add(res: EnrollResult) -> dict[str, Any]:
        f = res.found[0]
        loc = None
        if f is not None:
            x1, y1, x2, y2 = f.box
            loc = {"left": round(x1, 2), "top": round(y1, 2), "width": round(x2 - x1, 2), "height": round(y2 - y1, 2)}
        return {
            "result": {
                "face_id": res.ids[0],
                "group_id": res.key,
                "user_id": res.id_map[res.ids[0]],
                "face_found": f is not None,
                "location": loc,
            }
        }

    def decode_easydl_remove(self, body: dict) -> RemoveReq:
        ids = _ids(body, "face_ids", required=False)
        label = body.get("user_id")
        if ids is None and label is None:
            raise MissingParameter("'face_ids' or 'user_id' is required")
        return RemoveReq(_key(body, "group_id"), ids, None if label is None else check_label(label))

    @staticmethod
    def encode_easydl_remove(res: RemoveResult) -> dict[str, Any]:
        return {"result": {"group_id": res.key, "removed": res.removed, "face_num": len(res.id_map)}}

    def decode_easydl_list(self, body: dict) -> ListReq:
        label = body.get("user_id")
        return ListReq(
            _key(body, "group_id"),
            None if label is None else check_label(label),
            fields.integer(body, "start", 0, lo=0),
            fields.integer(body, "length", 100, hi=MAX_LIST),
        )

    @staticmethod
    def encode_easydl_list(res: dict[str, Any]) -> dict[str, Any]:
        return {"result": res}

    @staticmethod
    def decode_easydl_crops(body: dict) -> CropsReq:
        return CropsReq(_key(body, "group_id"), fields.int_list(body, "face_ids", required=True, max_items=MAX_CROPS))

    @staticmethod
    def decode_easydl_group_delete(body: dict) -> DeleteReq:
        return DeleteReq(_required_key(body, "group_id"))

    @staticmethod
    def encode_easydl_group_delete(res: DeleteResult) -> dict[str, Any]:
        return {"result": {"group_id": res.key, "removed_faces": res.faces}}


@dataclass(frozen=True)
class _Limited:
    """An EasyDL search: the PaddleX infer plus Baidu's ``max_face_num`` (largest faces first)."""

    req: InferReq
    max_faces: int | None

    def run(self, svc: Any) -> InferResult:
        r = self.req
        faces = svc.recognise(r.image, r.key, r.det_threshold, r.rec_threshold, r.topk)
        if self.max_faces is not None:
            faces = sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))[: self.max_faces]
        return InferResult(faces, encode_jpeg_b64(draw_faces(r.image, faces)) if r.visualize else None, r.key)


def draw_faces(rgb: np.ndarray, faces: list) -> np.ndarray:
    """Boxes with the best label and score (green), or 'Unknown' (red), as PaddleX's result image."""
    import cv2

    canvas = np.ascontiguousarray(rgb).copy()
    thick = max(1, round(min(canvas.shape[:2]) / 300))
    for f in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        known = bool(f.hits)
        colour = (0, 200, 0) if known else (220, 30, 30)
        text = f"{f.hits[0].label} {f.hits[0].score:.2f}" if known else "Unknown"
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, thick)
        ty = max(th + base, y1)
        cv2.rectangle(canvas, (x1, ty - th - base), (x1 + tw, ty), colour, -1)
        cv2.putText(canvas, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, (255, 255, 255), thick)
        if f.landmarks is not None:
            for x, y in f.landmarks:
                cv2.circle(canvas, (int(x), int(y)), thick + 1, (255, 200, 0), -1)
    return canvas
