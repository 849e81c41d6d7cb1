"""In-memory faiss index over one gallery index, kept in step with the SQLite store.

Index types as PaddleX's faisser: ``Flat``, ``IVF`` (``IVF{min(n//8, 65536)},Flat``) and
``HNSW32``, metric ``IP`` or ``L2``; faiss returns gallery ids (``IndexIDMap2`` around Flat and
HNSW, IVF's own id lists for IVF).

Removal works for every type. Flat and IVF remove in place (``remove_ids``). HNSW graphs cannot
drop a node, which is why PaddleX refuses removal for HNSW32; here a removed id goes into a
per-index *deleted set* that every search passes to faiss as an ``IDSelector``, so HNSW still
walks through the dead node (the graph stays connected) but never returns it. When dead nodes
exceed ``REBUILD_DEAD_FRACTION`` of the live ones the graph is rebuilt from the store, which
bounds both the wasted memory and the extra search work. IVF is retrained when the gallery has
grown ``IVF_RETRAIN_GROWTH``-fold since its centroids were trained.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ConfigInvalid
from ..services import fields
from .store import Changes

INDEX_TYPES = ("Flat", "IVF", "HNSW32")
METRICS = ("IP", "L2")
REBUILD_DEAD_FRACTION = 0.2
REBUILD_DEAD_MIN = 256
IVF_RETRAIN_GROWTH = 4
IVF_TRAIN_POINTS = 64
C_INT_MAX = 2**31 - 1


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: PaddleX's ``n // 8`` for small galleries, capped at
    4·sqrt(n) (faiss's guidance) where PaddleX's 65536 lists would take hours to train."""
    return max(1, min(n // 8, 4 * int(n**0.5), 65536))


def faiss_module() -> Any:
    """faiss, imported on first use with its loader's INFO lines (which CPU build it picked) muted."""
    import logging

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


@dataclass(frozen=True)
class IndexParams:
    index_type: str = "Flat"
    metric: str = "IP"
    # Measured on 1M random 128-d vectors (benchmarks/bench_face.py): efConstruction 40 gave
    # recall@1 0.974 at efSearch 256; 80 gives 0.994 at 1.5 ms (docs/face-service.md).
    hnsw_ef_search: int = 256
    hnsw_ef_construction: int = 80
    ivf_nprobe: int = 16

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ConfigInvalid(f"index_type must be one of {', '.join(INDEX_TYPES)}, got {self.index_type!r}")
        if self.metric not in METRICS:
            raise ConfigInvalid(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        for name in ("hnsw_ef_search", "hnsw_ef_construction", "ivf_nprobe"):
            value = getattr(self, name)
            if value is None:
                raise ConfigInvalid(f"'{name}' must be an integer in [1, {C_INT_MAX}], got null")
            # Normalised to int (3.0 -> 3): faiss takes these as C ints.
            object.__setattr__(
                self, name, fields.integer({name: value}, name, None, lo=1, hi=C_INT_MAX, err=ConfigInvalid)
            )

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is a closer match than ``b`` (IP: larger; L2: smaller)."""
        return a > b if self.metric == "IP" else a < b

    def passes(self, score: float, threshold: float) -> bool:
        # PaddleX tests ``score < threshold`` for every metric, which rejects the *best* L2
        # matches; a distance passes when it is small enough.
        return score >= threshold if self.metric == "IP" else score <= threshold


@dataclass(frozen=True)
class Hit:
    id: int
    label: str
    score: float


class VectorIndex:
    """One gallery index in faiss; thread-safe (refresh and search share a lock)."""

    def __init__(self, dim: int, params: IndexParams) -> None:
        self.dim = dim
        self.params = params
        self.gen: int | None = None
        self.labels: dict[int, str] = {}
        self.dead: set[int] = set()
        self._trained_on = 0
        self._lock = threading.Lock()
        self._index = self._empty(0)
        self._selector: tuple[Any, Any] | None = None  # (IDSelectorNot, the batch it points into)
        self.rebuilt = False  # set by a full build; the Gallery then saves a snapshot

    # --- construction -------------------------------------------------------------------
    def _factory_string(self, n: int) -> str:
        if self.params.index_type == "IVF":
            return f"IVF{ivf_lists(n)},Flat"
        return self.params.index_type

    def _empty(self, n: int) -> Any:
        faiss = faiss_module()

        metric = faiss.METRIC_INNER_PRODUCT if self.params.metric == "IP" else faiss.METRIC_L2
        base = faiss.index_factory(self.dim, self._factory_string(n), metric)
        if self.params.index_type == "HNSW32":
            base.hnsw.efConstruction = self.params.hnsw_ef_construction
        if self.params.index_type == "IVF":
            # k-means on a sample of IVF_TRAIN_POINTS per list, 10 rounds: a 1M gallery trains
            # in about a minute on 2 cores instead of hours.
            base.cp.max_points_per_centroid = IVF_TRAIN_POINTS
            base.cp.niter = 10
            # IVF stores ids itself. Wrapped in IndexIDMap, remove_ids would shift the wrapper's
            # id table as if IVF compacted its storage, which it does not: ids would go wrong.
            return base
        return faiss.IndexIDMap2(base)

    def _rebuild(self, ids: np.ndarray, labels: Sequence[str], vectors: np.ndarray) -> None:
        index = self._empty(len(ids))
        if self.params.index_type == "IVF":
            if len(ids):
                index.train(vectors)
            self._trained_on = len(ids)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids.astype(np.int64))
        self._index = index
        self.labels = dict(zip(ids.tolist(), labels))
        self.dead = set()
        self._selector = None
        self.rebuilt = True

    # --- keeping up with the store ------------------------------------------------------
    def apply(self, ch: Changes, reload: Callable[[], Changes]) -> None:
        """Bring the index to ``ch.gen``; ``reload()`` returns the full index when a rebuild is due."""
        with self._lock:
            if ch.full:
                self._rebuild(ch.ids, ch.labels, ch.vectors)
                self.gen = ch.gen
                return
            gone = [i for i in set(ch.removed.tolist()) | set(ch.ids.tolist()) if i in self.labels]
            hnsw = self.params.index_type == "HNSW32"
            if hnsw and any(i in self.dead for i in ch.ids.tolist()):
                # A dead HNSW node cannot come back under the same id; rebuild instead.
                return self._apply_full(reload())
            if gone:
                for i in gone:
                    del self.labels[i]
                if hnsw:
                    self.dead.update(gone)
                    self._selector = None
                else:
                    self._index.remove_ids(np.array(gone, np.int64))
            if len(ch.ids):
                if self.params.index_type == "IVF" and not self._index.is_trained:
                    return self._apply_full(reload())
                self._index.add_with_ids(np.ascontiguousarray(ch.vectors), ch.ids)
                self.labels.update(zip(ch.ids.tolist(), ch.labels))
            self.gen = ch.gen
            if self._needs_rebuild():
                self._apply_full(reload())

    def _apply_full(self, ch: Changes) -> None:
        self._rebuild(ch.ids, ch.labels, ch.vectors)
        self.gen = ch.gen

    def _needs_rebuild(self) -> bool:
        live = len(self.labels)
        if self.dead and len(self.dead) > max(REBUILD_DEAD_MIN, REBUILD_DEAD_FRACTION * live):
            return True
        return self.params.index_type == "IVF" and live >= 64 and live > IVF_RETRAIN_GROWTH * max(1, self._trained_on)

    # --- snapshots (so a restarted worker need not rebuild a large HNSW graph) ---------------
    def dump(self) -> bytes:
        """The faiss index with the ids it holds, the dead set and the generation it reflects."""
        with self._lock:
            blob = faiss_module().serialize_index(self._index)
            meta = {
                "gen": self.gen,
                "trained_on": self._trained_on,
                "dim": self.dim,
                "index_type": self.params.index_type,
                "metric": self.params.metric,
            }
            buf = io.BytesIO()
            np.savez(
                buf,
                index=blob,
                ids=np.fromiter(self.labels, np.int64, len(self.labels)),
                dead=np.fromiter(self.dead, np.int64, len(self.dead)),
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            )
            return buf.getvalue()

    @classmethod
    def load(cls, data: bytes, dim: int, params: IndexParams, labels: dict[int, str]) -> VectorIndex:
        """A dumped index; ``labels`` = the store's id -> label now. Ids the store no longer has
        keep a blank label until the tombstones newer than the snapshot remove them."""
        z = np.load(io.BytesIO(data), allow_pickle=False)
        meta = json.loads(bytes(z["meta"]).decode())
        if (meta["dim"], meta["index_type"], meta["metric"]) != (dim, params.index_type, params.metric):
            raise ValueError("snapshot of another index configuration")
        idx = cls(dim, params)
        idx._index = faiss_module().deserialize_index(np.ascontiguousarray(z["index"]))
        idx.labels = {i: labels.get(i, "") for i in z["ids"].tolist()}
        idx.dead = set(z["dead"].tolist())
        idx._trained_on = int(meta["trained_on"])
        idx.gen = int(meta["gen"])
        return idx

    # --- search -------------------------------------------------------------------------
    def _search_params(self, k: int) -> Any:
        faiss = faiss_module()

        sel = None
        if self.dead:
            if self._selector is None:
                batch = faiss.IDSelectorBatch(np.fromiter(self.dead, np.int64, len(self.dead)))
                # Keep the inner selector alive: the Not wrapper holds a raw pointer to it.
                self._selector = (faiss.IDSelectorNot(batch), batch)
            sel = self._selector[0]
        if self.params.index_type == "HNSW32":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.params.hnsw_ef_search, k))
        if self.params.index_type == "IVF":
            return faiss.SearchParametersIVF(sel=sel, nprobe=self.params.ivf_nprobe)
        return faiss.SearchParameters(sel=sel) if sel is not None else None

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Best ``k`` hits per query row, best first; removed ids never appear."""
        q = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        with self._lock:
            n = len(self.labels)
            if n == 0 or k < 1:
                return [[] for _ in range(len(q))]
            k = min(k, n)
            params = self._search_params(k)
            scores, ids = self._index.search(q, k, params=params) if params is not None else self._index.search(q, k)
            out = []
            for srow, irow in zip(scores.tolist(), ids.tolist()):
                out.append(
                    [Hit(i, self.labels[i], float(s)) for s, i in zip(srow, irow) if i >= 0 and i in self.labels]
                )
            return out

    def __len__(self) -> int:
        return len(self.labels)
