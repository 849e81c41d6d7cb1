"""A corpus of hostile requests against every route of the three services, in both dialects.

Each request must get the documented answer -- a 2xx, or a 4xx envelope with the documented
code -- and never 336000/500, never an echo of the input (a bound on the answer's size), never a
logged stack trace. Requests are built from three tables: bodies that are hostile to any route,
hostile values of each route's own fields, and hostile paths/methods/content types.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.unit import face_fakes as FF
from tests.unit.api.test_routes_keypoint import DET_YML, KPT_YML, FakeDetector, FakeKeypoints, write_bundle
from tests.unit.fakes import fake_factory, jpeg_b64, write_cls_bundle
from visionpack.api.app import create_app
from visionpack.config import ServiceConfig
from visionpack.errors import (
    Base64DecodeFailed,
    ImageDecodeFailed,
    ImageSizeInvalid,
    InvalidArgument,
    InvalidJson,
    MissingParameter,
)

OK = None  # the request is acceptable: a 200 success answer
ANSWER_BOUND = 1024  # bytes: an error answer is an envelope and a short message, whatever was sent
BIG = "Z" * 200_000  # a 200 KB field: must not come back
HUGE_INT = "9" * 5000  # Python's int() refuses it with a message about sys.set_int_max_str_digits

CLS_E, CLS_P = "/demo-classify/ImageClassification", "/image-classification"
KPT_E, KPT_P = "/demo-keypoint/HumanKeypointDetection", "/human-keypoint-detection"
FACE = {
    "P:infer": "/face-recognition-infer",
    "P:build": "/face-recognition-index-build",
    "P:add": "/face-recognition-index-add",
    "P:remove": "/face-recognition-index-remove",
    "P:delete": "/face-recognition-index-delete",
    "E:search": "/demo-face/FaceRecognition",
    "E:add": "/demo-face/FaceGallery/add",
    "E:remove": "/demo-face/FaceGallery/remove",
    "E:list": "/demo-face/FaceGallery/list",
    "E:delete": "/demo-face/FaceGallery/group/delete",
}
ROUTES = {
    "cls": {"E": CLS_E, "P": CLS_P},
    "kpt": {"E": KPT_E, "P": KPT_P},
    **{f"face-{k}": {k[0]: v} for k, v in FACE.items()},
}


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    cls_cfg = ServiceConfig(
        deploy="demo-classify",
        models={"classifier": str(write_cls_bundle(root / "cls"))},
        run_dir=str(root / "cls-run"),
    )
    det, kpt = write_bundle(root, "det", DET_YML), write_bundle(root, "kpt", KPT_YML)
    kpt_cfg = ServiceConfig(
        deploy="demo-keypoint",
        service="keypoint",
        run_dir=str(root / "kpt-run"),
        models={"detector": str(det), "keypoint": str(kpt)},
        options={"visualize_paddlex": False},
    )
    engines = {str(det): FakeDetector(), str(kpt): FakeKeypoints()}
    face_cfg = FF.face_config(root / "face", options={"rec_threshold": 0.9, "visualize_paddlex": False})
    clients = {
        "cls": create_app(cls_cfg, engine_factory=fake_factory, gate=None).test_client(),
        "kpt": create_app(kpt_cfg, engine_factory=lambda b, c: engines[str(b.path)], gate=None).test_client(),
    }
    face = create_app(face_cfg, engine_factory=FF.factory(), gate=None).test_client()
    return {**clients, **{name: face for name in ROUTES if name.startswith("face-")}}


@dataclass(frozen=True)
class Case:
    route: str  # key of ROUTES
    dialect: str  # "E" (EasyDL) or "P" (PaddleX)
    body: Any  # bytes/str sent as is, anything else as JSON
    want: type | None  # the error class whose code the answer must carry, or OK
    content_type: str = "application/json"
    method: str = "POST"
    path: str | None = None  # overrides the route's path

    def id(self) -> str:
        raw = self.body if isinstance(self.body, (bytes, str)) else json.dumps(self.body)
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        return f"{self.route}-{self.dialect}-{self.method}-{text[:40]!r}"


IMG = "<IMG>"  # replaced by a small valid image when the case runs


def _json(obj: Any) -> bytes:
    return json.dumps(obj).replace(json.dumps(IMG), json.dumps(jpeg_b64(96, 128))).encode()


# Bodies that are wrong for any route, whatever its fields.
ANY_ROUTE = [
    (b'{"image": "x", "top_num": NaN}', InvalidJson),
    (b'{"a": Infinity}', InvalidJson),
    (b'{"a": -Infinity}', InvalidJson),
    (b"[" * 10_000 + b"]" * 10_000, InvalidJson),
    (b'{"a":' * 50_000, InvalidJson),
    (b"", InvalidJson),
    (b"{bad", InvalidJson),
    (b'{"image": "\xff\xfe"}', InvalidJson),
    (b'{"a": 1}{"b": 2}', InvalidJson),
    (b"[]", InvalidArgument),
    (b"null", InvalidArgument),
    (b'"{}"', InvalidArgument),
    (b"42", InvalidArgument),
    (b'{"a": 1e400}', InvalidArgument),
    (b'{"a": -1e999}', InvalidArgument),
    (b'{"a": 18446744073709551616}', InvalidArgument),
    (('{"a": %s}' % HUGE_INT).encode(), InvalidArgument),
]

# Hostile values of each route's own fields (the image is valid unless the case is about it).
FIELDS: dict[str, list[tuple[dict, type | None]]] = {
    "cls": [
        ({"image": IMG, "N": 1e308}, InvalidArgument),
        ({"image": IMG, "N": 2**63}, InvalidArgument),
        ({"image": IMG, "N": 9.3e18}, InvalidArgument),
        ({"image": IMG, "N": -1}, InvalidArgument),
        ({"image": IMG, "N": 0}, InvalidArgument),
        ({"image": IMG, "N": "3"}, InvalidArgument),
        ({"image": IMG, "N": BIG}, InvalidArgument),
        ({"image": IMG, "N": [1] * 100_000}, InvalidArgument),
        ({"image": IMG, "N": {"$gt": 1}}, InvalidArgument),
        ({"image": IMG, "N": True}, InvalidArgument),
        ({"image": IMG, "N": 2**63 - 1}, OK),
        ({"image": IMG, "N": None}, OK),
        ({"image": IMG, "N": 3.0, "unknown\u202e": "\ud800"}, OK),
    ],
    "kpt": [
        ({"image": IMG, "T": 1e308}, "range"),
        ({"image": IMG, "T": -1e308}, "range"),
        ({"image": IMG, "T": "0.5"}, InvalidArgument),
        ({"image": IMG, "T": [0.5]}, InvalidArgument),
        ({"image": IMG, "T": BIG}, InvalidArgument),
        ({"image": IMG, "visualize": "\u202etrue"}, InvalidArgument),
        ({"image": IMG, "visualize": 1}, InvalidArgument),
        ({"image": IMG, "T": 0.5, "visualize": False}, OK),
    ],
    "face-P:infer": [
        ({"image": IMG, "topk": 1e19}, InvalidArgument),
        ({"image": IMG, "topk": 101}, InvalidArgument),
        ({"image": IMG, "detThreshold": BIG}, InvalidArgument),
        ({"image": IMG, "recThreshold": {}}, InvalidArgument),
        ({"image": IMG, "indexKey": "\ud800"}, InvalidArgument),
        ({"image": IMG, "indexKey": "../" * 100}, InvalidArgument),
        ({"image": IMG, "indexKey": ["default"]}, InvalidArgument),
        ({"image": IMG, "recThreshold": 1e308, "detThreshold": -1e308}, OK),
    ],
    "face-P:build": [
        ({"imageLabelPairs": [{"image": IMG, "label": "a"}] * 101}, InvalidArgument),
        ({"imageLabelPairs": [[IMG, "a"]]}, InvalidArgument),
        ({"imageLabelPairs": {"image": IMG, "label": "a"}}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": "x" * 257}]}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": "\u202eevil"}]}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": "a\x00b"}]}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": BIG}]}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": None}]}, MissingParameter),
        ({"imageLabelPairs": [{"image": BIG, "label": "a"}]}, ImageDecodeFailed),
        ({"imageLabelPairs": [{"image": IMG, "label": "名字 😀"}]}, OK),
    ],
    "face-P:add": [
        ({"imageLabelPairs": [{"image": IMG, "label": "a"}], "indexKey": BIG}, InvalidArgument),
        ({"imageLabelPairs": [{"image": IMG, "label": "a"}], "indexKey": 2**63}, InvalidArgument),
    ],
    "face-P:remove": [
        ({"ids": [2**63]}, InvalidArgument),
        ({"ids": [2**63 - 1]}, OK),
        ({"ids": [-1]}, InvalidArgument),
        ({"ids": [1.0]}, InvalidArgument),
        ({"ids": [[[1]]]}, InvalidArgument),
        ({"ids": list(range(10_001))}, InvalidArgument),
        ({"ids": [None]}, InvalidArgument),
        ({"ids": {"0": 1}}, InvalidArgument),
        ({"ids": 5}, InvalidArgument),
    ],
    "face-P:delete": [
        ({"indexKey": "\x00"}, InvalidArgument),
        ({"indexKey": {"$ne": ""}}, InvalidArgument),
        ({"indexKey": BIG}, InvalidArgument),
        ({}, MissingParameter),
    ],
    "face-E:search": [
        ({"image": IMG, "max_face_num": 2**63 - 1}, InvalidArgument),
        ({"image": IMG, "max_face_num": 1e19}, InvalidArgument),
        ({"image": IMG, "max_user_num": -1}, InvalidArgument),
        ({"image": IMG, "match_threshold": "0.8"}, InvalidArgument),
        ({"image": IMG, "group_id": BIG}, InvalidArgument),
        ({"image": IMG, "max_user_num": 50, "max_face_num": 20}, OK),
    ],
    "face-E:add": [
        ({"image": IMG, "user_id": BIG}, InvalidArgument),
        ({"image": IMG, "user_id": ["a"]}, InvalidArgument),
        ({"image": IMG, "user_id": " "}, InvalidArgument),
        ({"image": IMG, "user_id": "ok", "group_id": "\t"}, InvalidArgument),
        ({"image": IMG, "user_id": "😀"}, OK),
    ],
    "face-E:remove": [
        ({"face_ids": [9223372036854775807]}, OK),
        ({"face_ids": [-9223372036854775808]}, InvalidArgument),
        ({"user_id": BIG}, InvalidArgument),
        ({"user_id": 5}, InvalidArgument),
    ],
    "face-E:list": [
        ({"start": 2**63 - 1, "length": 1000}, OK),
        ({"start": 1e19}, InvalidArgument),
        ({"start": -1}, InvalidArgument),
        ({"length": 0}, InvalidArgument),
        ({"length": 1001}, InvalidArgument),
        ({"length": "10"}, InvalidArgument),
        ({"user_id": ""}, InvalidArgument),
    ],
    "face-E:delete": [
        ({"group_id": 0}, InvalidArgument),
        ({"group_id": "nope"}, InvalidArgument),
        ({"group_id": ""}, MissingParameter),
    ],
}
# Per service, which name the numeric field has in each dialect.
NAMES = {"cls": {"N": {"E": "top_num", "P": "topk"}}, "kpt": {"T": {"E": "threshold", "P": "detThreshold"}}}

# Hostile images: every route that takes one gets these.
IMAGES = [
    ("http://192.0.2.1/a.jpg", InvalidArgument),
    ("https://example.com/a.png", InvalidArgument),
    ("ftp://host/a.bmp", InvalidArgument),
    ("file:///etc/passwd", InvalidArgument),
    ("data:image/jpeg;base64,/9j/", Base64DecodeFailed),
    ("@@@@", Base64DecodeFailed),
    ("\ud800\udc00", Base64DecodeFailed),
    ("😀" * 10, Base64DecodeFailed),
    ("R0lGODlhAQABAAAAACw=", ImageDecodeFailed),
    (BIG, ImageDecodeFailed),
    ("A" * (4 * 1024 * 1024 + 8), ImageSizeInvalid),
    ([IMG], InvalidArgument),
    ({"b64": "x"}, InvalidArgument),
    (12345, InvalidArgument),
    (True, InvalidArgument),
    (None, MissingParameter),
    ("", MissingParameter),
]
IMAGE_ROUTES = ["cls", "kpt", "face-P:infer", "face-E:search", "face-E:add"]


def cases() -> list[Case]:
    out = []
    for route, dialects in ROUTES.items():
        for dialect in dialects:
            out += [Case(route, dialect, body, want) for body, want in ANY_ROUTE]
            out.append(Case(route, dialect, "image=abc", InvalidArgument, "application/x-www-form-urlencoded"))
            out.append(Case(route, dialect, b"--b\r\n\r\n--b--", InvalidArgument, "multipart/form-data; boundary=b"))
            for body, want in FIELDS.get(route, []):
                names = NAMES.get(route, {})
                real = {(names[k][dialect] if k in names else k): v for k, v in body.items()}
                out.append(
                    Case(
                        route,
                        dialect,
                        real,
                        InvalidArgument if want == "range" and dialect == "E" else (OK if want == "range" else want),
                    )
                )
            if route in IMAGE_ROUTES:
                extra = {"user_id": "u"} if route == "face-E:add" else {}
                out += [Case(route, dialect, {"image": img, **extra}, want) for img, want in IMAGES]
    # Wrong methods and unknown paths: both dialects in one envelope (checked in run()).
    for path in (CLS_E, CLS_P, FACE["P:delete"], FACE["E:delete"]):
        out += [
            Case("cls" if "lassif" in path else "face-P:infer", "both", b"", "405", method=m, path=path)
            for m in ("GET", "PUT", "DELETE")
        ]
    for path in (
        "/",
        "/demo-classify",
        "/demo-classify/Nope",
        "/face-recognition-index-drop",
        "/%00",
        "/" + "a" * 4000,
        "/demo-face/FaceGallery/group/delete/x",
        "/..%2f..%2fetc%2fpasswd",
    ):
        out.append(Case("cls" if "face" not in path else "face-P:infer", "both", b"{}", "404", path=path))
    return out


CASES = cases()


class _Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def logged_errors():
    handler = _Errors()
    logger = logging.getLogger("visionpack")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_the_corpus_is_large_and_covers_every_route():
    assert len(CASES) >= 300
    assert {(c.route, c.dialect) for c in CASES} >= {(r, d) for r, ds in ROUTES.items() for d in ds}


@pytest.mark.parametrize("case", CASES, ids=[c.id() for c in CASES])
def test_hostile_request(clients, case, logged_errors):
    client = clients[case.route]
    path = case.path or ROUTES[case.route][case.dialect]
    data = case.body if isinstance(case.body, (bytes, str)) else _json(case.body)
    r = client.open(path, method=case.method, data=data, content_type=case.content_type)
    assert r.status_code < 500, r.data[:300]
    assert r.mimetype == "application/json", r.data[:300]
    out = r.get_json()
    assert not logged_errors, logged_errors[0].getMessage()
    if case.want is OK:
        assert r.status_code == 200 and out.get("errorCode", 0) == 0 and "error_code" not in out, out
        return
    assert len(r.data) < ANSWER_BOUND, r.data[:300]
    assert "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ" not in r.get_data(as_text=True)
    assert "set_int_max_str_digits" not in r.get_data(as_text=True)
    if case.dialect == "both":
        status = int(case.want)
        assert r.status_code == status and out["errorCode"] == status and out["error_code"] == 336001
        assert isinstance(out["log_id"], int) and out["logId"] == str(out["log_id"])
    elif case.dialect == "E":
        assert set(out) == {"log_id", "error_code", "error_msg"}, out
        assert out["error_code"] == case.want.easydl_code and isinstance(out["log_id"], int), out
    else:
        assert set(out) == {"logId", "errorCode", "errorMsg"}, out
        assert r.status_code == out["errorCode"] == case.want.http_status, out
        assert isinstance(out["logId"], str) and out["logId"]


def test_the_services_still_answer_after_the_corpus(clients):
    r = clients["cls"].post(CLS_E, json={"image": jpeg_b64(), "top_num": 2})
    assert r.status_code == 200 and len(r.get_json()["results"]) == 2
    r = clients["face-P:infer"].post(FACE["P:infer"], json={"image": FF.b64(FF.picture(FF.RED))})
    assert r.status_code == 200 and r.get_json()["errorCode"] == 0
    assert np.isfinite(r.get_json()["result"]["faces"][0]["score"])
