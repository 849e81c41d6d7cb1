"""Face gallery: named indexes of labelled face vectors, durable in a store, searched with faiss.

:class:`Gallery` is what the face service and the CLI use. The store (a ``store.GalleryStore``,
the kind the deploy's config names, opened by ``store_factory.open_store``) is the truth; each
process keeps one :class:`~.index.VectorIndex` per index key and, before every search,
compares its generation with the store's (one cheap read) and applies only what changed
since -- so a face added through one gunicorn worker is found by the next search on any other
worker, without messages between them. Nothing outside this package sees how or where a
store keeps the gallery.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..config import GalleryConfig
from ..errors import GalleryUnavailable
from .index import Hit, IndexParams, VectorIndex
from .store import DEFAULT_INDEX, FaceEntry, GalleryStore, NewFace, UnknownIndex, check_key, gallery_dir
from .store_factory import open_store

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_INDEX",
    "Gallery",
    "GalleryConfig",
    "GalleryStore",
    "Hit",
    "IndexParams",
    "NewFace",
    "UnknownIndex",
    "open_store",
]

# Indexes at least this large are snapshotted after a full build: rebuilding a 1M-vector HNSW
# graph takes minutes per worker, loading its snapshot seconds.
SNAPSHOT_MIN = 20_000
log = logging.getLogger("visionpack.gallery")


def cache_dir(data_dir: str | Path) -> Path:
    """Index snapshots: a per-host cache, whatever the store (deleting it is always safe)."""
    return gallery_dir(data_dir) / "index-cache"


def snapshot_stem(key: str) -> str:
    """The file-name prefix of every snapshot of ``key`` (one per index type, metric and model)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def remove_snapshots(cache: Path | None, key: str) -> None:
    """Snapshots hold the vectors too: a deleted index must not survive in them."""
    if cache is None or not cache.is_dir():
        return
    for path in cache.glob(f"{snapshot_stem(key)}-*.npz"):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class Gallery:
    """Gallery bound to one feature model (``model``: its fingerprint; ``dim``: vector size)."""

    def __init__(
        self,
        store: GalleryStore,
        params: IndexParams,
        model: str,
        dim: int,
        cache_dir: Path | None = None,
        max_keys: int | None = None,
    ) -> None:
        self.store = store
        self.params = params
        self.model = model
        self.dim = dim
        self.cache_dir = cache_dir
        self.max_keys = max_keys  # index keys the gallery may hold (None: no bound)
        self._indexes: dict[str, VectorIndex] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        params: IndexParams,
        model: str,
        dim: int,
        max_keys: int | None = None,
        settings: GalleryConfig | None = None,
    ) -> Gallery:
        """The deploy's gallery: the store its config names (``settings``; SQLite when None)."""
        store = open_store(settings or GalleryConfig(), data_dir)
        return cls.over(store, params, model, dim, cache_dir(data_dir), max_keys)

    @classmethod
    def over(
        cls,
        store: GalleryStore,
        params: IndexParams,
        model: str,
        dim: int,
        cache_dir: Path | None = None,
        max_keys: int | None = None,
    ) -> Gallery:
        """A gallery on a store already open, with its default index (requests without an
        indexKey and the service's warm-up use it)."""
        g = cls(store, params, model, dim, cache_dir, max_keys)
        g.store.ensure_index(DEFAULT_INDEX)
        return g

    # --- freshness ----------------------------------------------------------------------
    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def fresh(self, key: str) -> VectorIndex:
        """The in-memory index for ``key``, caught up with every commit made before this call."""
        try:
            gen = self.store.generation(key)
        except UnknownIndex:
            # Deleted (perhaps through another worker): free this process's copy of it.
            self._indexes.pop(key, None)
            raise
        idx = self._indexes.get(key)
        if idx is not None and idx.gen == gen:
            return idx
        with self._lock_for(key):
            idx = self._indexes.get(key)
            if idx is None:
                idx = self._indexes[key] = self._load_snapshot(key) or VectorIndex(self.dim, self.params)
            if idx.gen != gen:
                # Re-read inside the lock: a concurrent thread may already have caught up.
                try:
                    ch = self.store.changes(key, idx.gen, self.model, self.dim)
                except GalleryUnavailable:
                    if idx.gen is None:
                        raise  # nothing synced yet to answer from
                    # The database went away after announcing a change: answer from the last
                    # synced index (the store's sync_state, shown in /ready, says so).
                    return idx
                if ch.gen != idx.gen:
                    idx.apply(ch, lambda: self.store.changes(key, None, self.model, self.dim))
            if idx.rebuilt:
                idx.rebuilt = False
                if len(idx) >= SNAPSHOT_MIN:
                    self._save_snapshot(key, idx)
        return idx

    def snapshot_path(self, key: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return (
            self.cache_dir / f"{snapshot_stem(key)}-{self.params.index_type}-{self.params.metric}-{self.model[:16]}.npz"
        )

    def _load_snapshot(self, key: str) -> VectorIndex | None:
        path = self.snapshot_path(key)
        if path is None or not path.exists():
            return None
        try:
            # A snapshot older than the store's tombstone horizon is caught by changes(): it
            # then answers with the full index and the snapshot is simply rebuilt over.
            idx = VectorIndex.load(path.read_bytes(), self.dim, self.params, self.store.id_map(key))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("ignoring index snapshot %s: %s", path, exc)
            return None
        if idx.gen is None or idx.gen > self.store.generation(key):
            # From a future the store does not have (a database file restored by hand).
            log.warning("ignoring index snapshot %s: newer than the gallery", path)
            return None
        return idx

    def _save_snapshot(self, key: str, idx: VectorIndex) -> None:
        from ..fsutil import atomic_write

        path = self.snapshot_path(key)
        if path is None:
            return
        try:
            atomic_write(path, idx.dump())
        except OSError as exc:  # a cache: failing to write it must not fail the search
            log.warning("cannot write index snapshot %s: %s", path, exc)

    # --- operations ---------------------------------------------------------------------
    def search(self, key: str, vectors: NDArray[np.float32], k: int) -> list[list[Hit]]:
        return self.fresh(key).search(vectors, k)

    def build(self, faces: Sequence[NewFace], key: str | None = None) -> tuple[str, list[int]]:
        """A new index (PaddleX: ``indexKey`` = uuid4) holding ``faces``, in one transaction."""
        key = check_key(key) if key is not None else str(uuid.uuid4())
        ids = self.store.add(key, faces, self.model, create=True, limit=self.max_keys)
        return key, ids

    def ensure(self, key: str) -> None:
        """Create ``key`` unless it exists (EasyDL's add creates its group on first use)."""
        self.store.ensure_index(key, limit=self.max_keys)

    def add(self, key: str, faces: Sequence[NewFace]) -> list[int]:
        return self.store.add(key, faces, self.model)

    def remove(self, key: str, ids: Sequence[int]) -> list[int]:
        return self.store.remove(key, ids)

    def remove_label(self, key: str, label: str) -> list[int]:
        return self.store.remove_label(key, label)

    def list_faces(
        self, key: str, label: str | None = None, start: int = 0, length: int = 100
    ) -> tuple[int, list[FaceEntry]]:
        return self.store.list_faces(key, label, start, length)

    def id_map(self, key: str) -> dict[int, str]:
        return self.store.id_map(key)

    def crop(self, key: str, face_id: int) -> bytes:
        """The stored aligned chip (PNG) of a face; an unknown id is InvalidArgument."""
        return self.store.crop(key, face_id)

    def keys(self) -> list[str]:
        return self.store.index_keys()

    def drop(self, key: str, recreate: bool = False) -> int:
        """Delete ``key`` with its faces, crops, vectors and snapshots in one transaction
        (``recreate``: an empty index of the same key replaces it); returns how many faces went.
        Other processes notice at their next use of the key (``fresh`` finds it gone or new)."""
        removed = self.store.drop_index(key, recreate=recreate)
        self._indexes.pop(key, None)
        remove_snapshots(self.cache_dir, key)
        return removed

    def delete(self, key: str) -> int:
        """What the API and the CLI do: drop an index key, except that the default index is
        emptied rather than removed -- requests without an indexKey/group_id, and the service's
        warm-up, rely on it existing."""
        return self.drop(key, recreate=key == DEFAULT_INDEX)

    def stale_count(self) -> int:
        return self.store.count_stale(self.model)

    def migrate(
        self,
        embed: Callable[[list[bytes]], NDArray[np.float32]],
        batch: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Recompute vectors made by another feature model from their stored crops.

        Batches commit one by one, so a crash resumes where it stopped, and rows are only
        overwritten while still stale, so several processes migrating at once do no harm.
        Until a row is migrated it is left out of searches (its vector is not comparable).
        """
        total = self.store.count_stale(self.model)
        done = 0
        while True:
            rows = self.store.stale(self.model, batch)
            if not rows:
                return done
            vecs = embed([r.crop for r in rows])
            by_key: dict[tuple[str, str], list[tuple[int, NDArray[np.float32]]]] = {}
            for r, v in zip(rows, vecs):
                by_key.setdefault((r.key, r.model), []).append((r.id, v))
            for (key, old), updates in by_key.items():
                done += self.store.replace_vectors(key, updates, self.model, old)
            if progress:
                progress(min(done, total), total)
