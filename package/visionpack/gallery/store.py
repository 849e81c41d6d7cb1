"""The face gallery's source of truth as a protocol (``GalleryStore``), with the values it trades in.

A store holds everything a search needs -- ids, labels, vectors, the aligned crops the vectors
came from and which feature model made them -- so a faiss index is only a cache that any
process can rebuild from it. Which store a deploy uses comes from its config (``gallery.store``,
opened by ``store_factory.open_store``): ``sqlite_store.py`` (one server) or ``postgres_store.py``
(several servers sharing one database). What
:class:`~visionpack.gallery.Gallery` relies on, whatever the store:

* **Transactions.** Every write is one transaction, atomic across threads, processes and forks
  (a gunicorn worker, the CLI); a killed process loses only its uncommitted write.
* **Ids** are per index, handed out inside the write that adds them: unique, increasing in
  commit order, never reused (not after a removal, not after an import).
* **Generations.** Every write bumps its index's generation and stamps the rows it touches
  with it; a removal leaves a tombstone with it. ``changes(key, g)`` returns what a reader at
  generation ``g`` must apply. Tombstones may be pruned: a reader behind the pruning horizon
  (``pruned_gen``) gets the whole index instead (``Changes.full``). An index dropped and
  created again starts above every generation its predecessor reached, at its own horizon, so
  every cached copy of the old one is reloaded in full.
* **Secure deletion.** A removed face or a dropped index leaves no recoverable vector or crop
  in the store's files (faces are biometric data).
* **Files** the store creates take the process umask (the service's 027: private to the
  service user and its group).
* **Export files** have one format whatever the store: a SQLite database of the schema
  ``sqlite_store.py`` writes, so a backup restores into any store kind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypedDict

import numpy as np

from ..errors import InvalidArgument
from ..services.fields import preview

if TYPE_CHECKING:
    from numpy.typing import NDArray

DEFAULT_INDEX = "default"
MAX_LABEL_CHARS = 256
MAX_KEY_CHARS = 128
GALLERY_DIR = "face"  # under data_dir: whatever a deploy's gallery keeps on this host

# An unknown indexKey is the client's mistake (PaddleX answers 500): InvalidArgument itself,
# not a subclass, because errors.py is the one list of codes and the README table is built
# from its subclasses.
UnknownIndex = InvalidArgument


def gallery_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Where a deploy's gallery keeps files on this host (a store's database, the index cache)."""
    return Path(data_dir) / GALLERY_DIR


@dataclass(frozen=True)
class NewFace:
    label: str
    vector: NDArray[np.float32]  # [dim], L2-normalised by the feature model
    crop_png: bytes  # the aligned chip the vector was computed from


@dataclass(frozen=True)
class Changes:
    """What a reader at generation ``since`` must apply to reach ``gen``."""

    gen: int
    full: bool  # True: ``ids``/``vectors`` are the whole index
    ids: NDArray[np.int64]  # [n] rows added or changed (current model only)
    labels: list[str]
    vectors: NDArray[np.float32]  # [n, dim]
    removed: NDArray[np.int64]  # ids gone (or now made by another model)


class StaleFace(NamedTuple):
    """A row whose vector another feature model made: re-embedded from its crop."""

    key: str
    id: int
    model: str
    crop: bytes


class FaceEntry(TypedDict):
    id: int
    label: str
    created: float  # seconds since the epoch


class IndexStats(TypedDict):
    key: str
    faces: int
    labels: int
    gen: int
    created: float


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise InvalidArgument(
            f"indexKey must be a printable string of 1..{MAX_KEY_CHARS} characters, got {preview(key)}"
        )
    return key


def check_label(label: object) -> str:
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise InvalidArgument(
            f"label must be a printable, non-blank string of at most {MAX_LABEL_CHARS} characters, got {preview(label)}"
        )
    return label


def unknown_index(key: str) -> InvalidArgument:
    return UnknownIndex(f"unknown indexKey {preview(key)}")


def key_limit_reached(have: int) -> InvalidArgument:
    return InvalidArgument(
        f"the gallery already holds {have} index keys, its limit (options.max_index_keys); delete an index key first"
    )


class GalleryStore(Protocol):
    """A gallery's durable store, shared by every process of a deploy (see the module's rules).

    Every method naming an index ``key`` that does not exist raises :data:`UnknownIndex`
    (except ``ensure_index`` and ``add(create=True)``, which create it). ``limit`` is the most
    index keys the store may hold, counted inside the creating transaction so concurrent
    creators cannot both pass; creating one more raises ``key_limit_reached``.
    """

    # --- indexes ----------------------------------------------------------------------
    def ensure_index(self, key: str, limit: int | None = None) -> None:
        """Create ``key`` unless it exists."""
        ...

    def index_keys(self) -> list[str]:
        """Every index key, oldest first."""
        ...

    def generation(self, key: str) -> int:
        """The index's generation: the freshness probe every search makes, so it must be cheap."""
        ...

    def drop_index(self, key: str, recreate: bool = False) -> int:
        """Delete an index with its faces and tombstones in one transaction (``recreate``: an
        empty index of the same key takes its place in it); returns how many faces went."""
        ...

    # --- writes -----------------------------------------------------------------------
    def add(
        self, key: str, faces: Sequence[NewFace], model: str, *, create: bool = False, limit: int | None = None
    ) -> list[int]:
        """Insert faces made by feature model ``model``; returns their new ids. ``create``: the
        index is new, in the same transaction (an existing key is an error). Labels are checked
        (``check_label``) before anything is written."""
        ...

    def remove(self, key: str, ids: Sequence[int]) -> list[int]:
        """Delete the given ids; returns those that existed (unknown ids are not an error)."""
        ...

    def remove_label(self, key: str, label: str) -> list[int]:
        """Delete every face with ``label``; returns their ids."""
        ...

    def replace_vectors(
        self, key: str, updates: Sequence[tuple[int, NDArray[np.float32]]], model: str, old_model: str
    ) -> int:
        """Re-embedding: new vectors for rows still made by ``old_model`` (others are left alone,
        so two processes migrating at once cannot overwrite each other's newer work)."""
        ...

    # --- reads ------------------------------------------------------------------------
    def changes(self, key: str, since: int | None, model: str, dim: int) -> Changes:
        """Rows made by ``model`` that changed after generation ``since`` (all when None), read
        in one consistent snapshot; a vector that is not ``dim`` long raises ModelInvalid."""
        ...

    def stale(self, model: str, limit: int = 64) -> list[StaleFace]:
        """Up to ``limit`` rows whose vectors another feature model made."""
        ...

    def count_stale(self, model: str) -> int: ...

    def id_map(self, key: str) -> dict[int, str]:
        """id -> label of the whole index, by id."""
        ...

    def list_faces(
        self, key: str, label: str | None = None, start: int = 0, length: int = 100
    ) -> tuple[int, list[FaceEntry]]:
        """(total, page) ordered by id, optionally of one label."""
        ...

    def stats(self) -> list[IndexStats]:
        """One entry per index, oldest first."""
        ...

    def crop(self, key: str, face_id: int) -> bytes:
        """The stored aligned chip (PNG) of a face; an unknown id is InvalidArgument."""
        ...

    # --- backup -----------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> None:
        """A consistent copy of the whole gallery in the export format, written atomically."""
        ...

    def import_file(self, path: str | os.PathLike[str], replace: bool = False) -> dict[str, int]:
        """Copy every index of an export in, in one transaction; returns {key: faces}. Ids,
        labels, vectors, crops and model fingerprints are kept. An existing key is an error
        unless ``replace``; a replaced index restarts above its old generation. A file that is
        not an export of this schema is InvalidArgument."""
        ...

    # --- sync -------------------------------------------------------------------------
    def sync_state(self) -> dict[str, Any]:
        """How current this process's view of the store is, for ``/ready`` and diagnostics:
        ``store`` (its kind) and, for a database server, ``listening`` (changes arrive),
        ``synced_s_ago`` (the last generation check) and ``error``. Never a credential."""
        ...

    def close(self) -> None: ...
