"""An in-memory ``GalleryStore``: the protocol kept with no SQL and no files (tests of the seam).

It keeps the rules of gallery/store.py the simple way -- one lock for transactions, per-index
generations stamped on rows, tombstones with a pruning horizon, ids never reused, a recreated
index starting above its predecessor -- so the Gallery and the face service can be run on it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from visionpack.errors import InvalidArgument, ModelInvalid
from visionpack.gallery.store import (
    Changes,
    FaceEntry,
    IndexStats,
    NewFace,
    StaleFace,
    check_key,
    check_label,
    key_limit_reached,
    unknown_index,
)


@dataclass
class Row:
    label: str
    vector: np.ndarray
    model: str
    crop: bytes
    created: float
    gen: int


@dataclass
class Index:
    created: float
    gen: int
    pruned_gen: int
    next_id: int = 0
    faces: dict[int, Row] = field(default_factory=dict)
    removed: list[tuple[int, int]] = field(default_factory=list)  # (id, gen)


class MemoryStore:
    keep_tombstones = 100_000

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._indexes: dict[str, Index] = {}
        self._gen_floor = 0
        self.calls: list[str] = []  # what the Gallery asked, in order

    def _index(self, key: str) -> Index:
        if key not in self._indexes:
            raise unknown_index(key)
        return self._indexes[key]

    def _create(self, key: str, limit: int | None, next_id: int = 0) -> Index:
        if limit is not None and key not in self._indexes and len(self._indexes) >= limit:
            raise key_limit_reached(len(self._indexes))
        gen = self._gen_floor + 1
        idx = self._indexes[check_key(key)] = Index(time.time(), gen, gen, next_id)
        return idx

    def _drop(self, key: str) -> Index | None:
        idx = self._indexes.pop(key, None)
        if idx is not None:
            self._gen_floor = max(self._gen_floor, idx.gen)
        return idx

    def _bump(self, key: str) -> tuple[Index, int]:
        idx = self._index(key)
        idx.gen += 1
        return idx, idx.gen

    # --- indexes ----------------------------------------------------------------------
    def ensure_index(self, key: str, limit: int | None = None) -> None:
        with self._lock:
            self.calls.append("ensure_index")
            if key not in self._indexes:
                self._create(key, limit)

    def index_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes, key=lambda k: (self._indexes[k].created, k))

    def generation(self, key: str) -> int:
        with self._lock:
            self.calls.append("generation")
            return self._index(key).gen

    def drop_index(self, key: str, recreate: bool = False) -> int:
        with self._lock:
            idx = self._drop(key)
            if idx is None:
                raise unknown_index(key)
            if recreate:
                self._create(key, None)
            return len(idx.faces)

    # --- writes -----------------------------------------------------------------------
    def add(
        self, key: str, faces: Sequence[NewFace], model: str, *, create: bool = False, limit: int | None = None
    ) -> list[int]:
        for f in faces:
            check_label(f.label)
        with self._lock:
            self.calls.append("add")
            if create:
                if key in self._indexes:
                    raise InvalidArgument(f"index {key} exists")
                self._create(key, limit)
            idx, gen = self._bump(key)
            ids = list(range(idx.next_id, idx.next_id + len(faces)))
            for i, f in zip(ids, faces):
                idx.faces[i] = Row(
                    f.label, np.asarray(f.vector, np.float32).copy(), model, f.crop_png, time.time(), gen
                )
            idx.next_id += len(faces)
            return ids

    def remove(self, key: str, ids: Sequence[int]) -> list[int]:
        with self._lock:
            idx, gen = self._bump(key)
            gone = [i for i in dict.fromkeys(int(x) for x in ids) if idx.faces.pop(i, None) is not None]
            idx.removed += [(i, gen) for i in gone]
            horizon = gen - self.keep_tombstones
            if horizon > 0 and any(g <= horizon for _, g in idx.removed):
                idx.removed = [(i, g) for i, g in idx.removed if g > horizon]
                idx.pruned_gen = max(idx.pruned_gen, horizon)
            return gone

    def remove_label(self, key: str, label: str) -> list[int]:
        with self._lock:
            self.calls.append("remove_label")
            ids = [i for i, r in self._index(key).faces.items() if r.label == label]
            return self.remove(key, ids) if ids else []

    def replace_vectors(
        self, key: str, updates: Sequence[tuple[int, NDArray[np.float32]]], model: str, old_model: str
    ) -> int:
        with self._lock:
            idx, gen = self._bump(key)
            n = 0
            for i, vec in updates:
                row = idx.faces.get(int(i))
                if row is not None and row.model == old_model:
                    row.vector, row.model, row.gen = np.asarray(vec, np.float32).copy(), model, gen
                    n += 1
            return n

    # --- reads ------------------------------------------------------------------------
    def changes(self, key: str, since: int | None, model: str, dim: int) -> Changes:
        with self._lock:
            self.calls.append("changes")
            idx = self._index(key)
            full = since is None or since < idx.pruned_gen
            lo = -1 if full else since
            rows = sorted((i, r) for i, r in idx.faces.items() if r.gen > lo and r.model == model)
            removed = [] if full else [i for i, g in idx.removed if g > lo]
            if not full:
                removed += [i for i, r in idx.faces.items() if r.gen > lo and r.model != model]
            vecs = np.empty((len(rows), dim), np.float32)
            for n, (i, r) in enumerate(rows):
                if r.vector.shape[0] != dim:
                    raise ModelInvalid(
                        f"gallery vector {key}/{i} has {r.vector.shape[0]} dims, the feature model makes {dim}"
                    )
                vecs[n] = r.vector
            return Changes(
                idx.gen,
                full,
                np.array([i for i, _ in rows], np.int64),
                [r.label for _, r in rows],
                vecs,
                np.array(removed, np.int64),
            )

    def stale(self, model: str, limit: int = 64) -> list[StaleFace]:
        with self._lock:
            out = [
                StaleFace(k, i, r.model, r.crop)
                for k, idx in self._indexes.items()
                for i, r in idx.faces.items()
                if r.model != model
            ]
            return out[:limit]

    def count_stale(self, model: str) -> int:
        return len(self.stale(model, limit=1 << 62))

    def id_map(self, key: str) -> dict[int, str]:
        with self._lock:
            self.calls.append("id_map")
            return {i: r.label for i, r in sorted(self._index(key).faces.items())}

    def list_faces(
        self, key: str, label: str | None = None, start: int = 0, length: int = 100
    ) -> tuple[int, list[FaceEntry]]:
        with self._lock:
            self.calls.append("list_faces")
            rows = [(i, r) for i, r in sorted(self._index(key).faces.items()) if label is None or r.label == label]
            page: list[FaceEntry] = [
                {"id": i, "label": r.label, "created": r.created} for i, r in rows[start : start + length]
            ]
            return len(rows), page

    def stats(self) -> list[IndexStats]:
        with self._lock:
            return [
                {
                    "key": k,
                    "faces": len(self._indexes[k].faces),
                    "labels": len({r.label for r in self._indexes[k].faces.values()}),
                    "gen": self._indexes[k].gen,
                    "created": self._indexes[k].created,
                }
                for k in self.index_keys()
            ]

    def crop(self, key: str, face_id: int) -> bytes:
        with self._lock:
            row = self._index(key).faces.get(int(face_id))
            if row is None:
                raise InvalidArgument(f"no face {face_id} in index {key}")
            return row.crop

    # --- backup: an in-memory store has no export file --------------------------------------
    def export(self, path: str | os.PathLike[str]) -> None:
        raise InvalidArgument("the in-memory store writes no export")

    def import_file(self, path: str | os.PathLike[str], replace: bool = False) -> dict[str, int]:
        raise InvalidArgument("the in-memory store reads no export")

    def sync_state(self) -> dict[str, Any]:
        return {"store": "memory"}

    def close(self) -> None:
        pass
