"""The SQLite gallery store: one database (WAL) per deploy, ``<data_dir>/face/face_gallery.sqlite3``.

How it keeps the rules of ``store.py``:

* Every write is one ``BEGIN IMMEDIATE`` transaction: SQLite serialises writers across
  processes, so ids handed out inside it are unique and increase in commit order; a killed
  process loses only its uncommitted transaction (WAL + ``synchronous=FULL``).
* Every write bumps its index's ``gen`` and stamps the rows it touches with the new value;
  removals leave a tombstone with it. A reader that cached generation ``g`` catches up by
  reading rows and tombstones with ``gen > g`` -- a cheap indexed query, not a reload.
* Tombstones older than ``KEEP_TOMBSTONES`` generations are pruned and ``pruned_gen`` records
  the horizon; a reader older than that reloads the whole index instead.
* ``secure_delete`` overwrites what a removal frees. The export format is this database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import GalleryConfig
from ..errors import ConfigInvalid, InvalidArgument, ModelInvalid
from ..services.fields import preview
from .store import (
    Changes,
    FaceEntry,
    IndexStats,
    NewFace,
    StaleFace,
    check_key,
    check_label,
    gallery_dir,
    key_limit_reached,
    unknown_index,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

SCHEMA_VERSION = 1
KEEP_TOMBSTONES = 100_000
DB_NAME = "face_gallery.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS indexes (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    next_id INTEGER NOT NULL DEFAULT 0,
    pruned_gen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS faces (
    index_key TEXT NOT NULL REFERENCES indexes(key) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    label TEXT NOT NULL,
    vector BLOB NOT NULL,
    model TEXT NOT NULL,
    crop BLOB NOT NULL,
    created REAL NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (index_key, id)
);
CREATE INDEX IF NOT EXISTS faces_gen ON faces (index_key, gen);
CREATE INDEX IF NOT EXISTS faces_model ON faces (model, index_key);
CREATE TABLE IF NOT EXISTS removed (
    index_key TEXT NOT NULL REFERENCES indexes(key) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    gen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS removed_gen ON removed (index_key, gen);
"""


def db_path(data_dir: str | os.PathLike[str]) -> Path:
    return gallery_dir(data_dir) / DB_NAME


class SqliteStore:
    """A ``GalleryStore`` on one SQLite file; thread-safe (one connection per process, behind a lock)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._busy = busy_timeout_s
        self._conn = self._connect()

    @classmethod
    def from_config(cls, settings: GalleryConfig, data_dir: str | os.PathLike[str]) -> SqliteStore:
        """The deploy's database, in its data directory."""
        if settings.dsn:
            raise ConfigInvalid(
                "gallery.dsn names a database server; the sqlite store keeps the gallery in "
                "data_dir and takes none (remove gallery.dsn)"
            )
        return cls(db_path(data_dir))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN ourselves, so no implicit transaction hides a write.
        conn = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not just a process kill (WAL's NORMAL does not).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Faces are biometric data: a removed face or a deleted index must not linger in free
        # pages of the database file (SQLite would otherwise only unlink them).
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy * 1000)}")
        # executescript commits on its own, so it runs outside any BEGIN; IF NOT EXISTS makes
        # concurrent first starts harmless.
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise ModelInvalid(f"{self.path}: gallery schema {row[0]}, this release reads {SCHEMA_VERSION}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        # A connection must not cross a fork (gunicorn forks after imports); reopen in the child.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._conn = self._connect()
        return self._conn

    @staticmethod
    @contextmanager
    def _tx(conn: sqlite3.Connection, write: bool = False) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._tx(self.conn, write=True) as c:
            yield c

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        # One read transaction = one WAL snapshot: generation and rows agree with each other.
        with self._lock, self._tx(self.conn) as c:
            yield c

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def sync_state(self) -> dict[str, Any]:
        return {"store": "sqlite"}  # every process reads the one file: nothing to lag behind

    # --- indexes ----------------------------------------------------------------------
    @staticmethod
    def _insert_index(
        c: sqlite3.Connection, key: str, ignore: bool = False, next_id: int = 0, limit: int | None = None
    ) -> int:
        # A new index starts above every generation a dropped index of the same key reached,
        # with pruned_gen at the start: a process still caching the old one reloads in full.
        if limit is not None and c.execute("SELECT 1 FROM indexes WHERE key=?", (key,)).fetchone() is None:
            # Counted inside the write transaction, so concurrent creators cannot both pass.
            have = int(c.execute("SELECT COUNT(*) FROM indexes").fetchone()[0])
            if have >= limit:
                raise key_limit_reached(have)
        row = c.execute("SELECT value FROM meta WHERE key='gen_floor'").fetchone()
        gen = (int(row[0]) if row else 0) + 1
        c.execute(
            f"INSERT {'OR IGNORE ' if ignore else ''}INTO indexes(key, created, gen, next_id, pruned_gen) "
            "VALUES (?, ?, ?, ?, ?)",
            (check_key(key), time.time(), gen, next_id, gen),
        )
        return gen

    @staticmethod
    def _drop(c: sqlite3.Connection, key: str) -> bool:
        row = c.execute("SELECT gen FROM indexes WHERE key=?", (key,)).fetchone()
        if row is None:
            return False
        c.execute(
            "INSERT INTO meta(key, value) VALUES ('gen_floor', ?) ON CONFLICT(key) DO UPDATE SET "
            "value=MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(int(row[0])),),
        )
        c.execute("DELETE FROM indexes WHERE key=?", (key,))
        return True

    def ensure_index(self, key: str, limit: int | None = None) -> None:
        with self.write() as c:
            self._insert_index(c, key, ignore=True, limit=limit)

    def index_keys(self) -> list[str]:
        with self.read() as c:
            return [r[0] for r in c.execute("SELECT key FROM indexes ORDER BY created, key")]

    def generation(self, key: str) -> int:
        """The cheap freshness probe every search makes (one primary-key lookup)."""
        with self._lock:
            row = self.conn.execute("SELECT gen FROM indexes WHERE key=?", (key,)).fetchone()
        if row is None:
            raise unknown_index(key)
        return int(row[0])

    def drop_index(self, key: str, recreate: bool = False) -> int:
        """Delete an index with its faces, crops, vectors and tombstones in one transaction
        (``recreate``: an empty index of the same key takes its place in the same transaction);
        returns how many faces went."""
        with self.write() as c:
            row = c.execute("SELECT COUNT(*) FROM faces WHERE index_key=?", (key,)).fetchone()
            if not self._drop(c, key):
                raise unknown_index(key)
            if recreate:
                self._insert_index(c, key)
        return int(row[0])

    # --- writes -----------------------------------------------------------------------
    @staticmethod
    def _bump(c: sqlite3.Connection, key: str) -> tuple[int, int]:
        row = c.execute("SELECT gen, next_id FROM indexes WHERE key=?", (key,)).fetchone()
        if row is None:
            raise unknown_index(key)
        gen = int(row[0]) + 1
        c.execute("UPDATE indexes SET gen=? WHERE key=?", (gen, key))
        return gen, int(row[1])

    def add(
        self, key: str, faces: Sequence[NewFace], model: str, *, create: bool = False, limit: int | None = None
    ) -> list[int]:
        """Insert faces in one transaction; returns their new ids (never reused)."""
        for f in faces:
            check_label(f.label)
        with self.write() as c:
            if create:
                self._insert_index(c, key, limit=limit)
            gen, next_id = self._bump(c, key)
            ids = list(range(next_id, next_id + len(faces)))
            now = time.time()
            c.executemany(
                "INSERT INTO faces(index_key, id, label, vector, model, crop, created, gen) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (key, i, f.label, np.asarray(f.vector, np.float32).tobytes(), model, f.crop_png, now, gen)
                    for i, f in zip(ids, faces)
                ],
            )
            c.execute("UPDATE indexes SET next_id=? WHERE key=?", (next_id + len(faces), key))
        return ids

    def remove(self, key: str, ids: Sequence[int]) -> list[int]:
        """Delete the given ids; returns those that existed (unknown ids are not an error)."""
        with self.write() as c:
            gen, _ = self._bump(c, key)
            gone = []
            for i in dict.fromkeys(int(x) for x in ids):
                if c.execute("DELETE FROM faces WHERE index_key=? AND id=?", (key, i)).rowcount:
                    gone.append(i)
            c.executemany("INSERT INTO removed(index_key, id, gen) VALUES (?,?,?)", [(key, i, gen) for i in gone])
            self._prune(c, key, gen)
        return gone

    def remove_label(self, key: str, label: str) -> list[int]:
        with self.read() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM faces WHERE index_key=? AND label=?", (key, label))]
        if not ids:
            self.generation(key)  # still an error for an unknown index
            return []
        return self.remove(key, ids)

    @staticmethod
    def _prune(c: sqlite3.Connection, key: str, gen: int) -> None:
        horizon = gen - KEEP_TOMBSTONES
        if horizon > 0 and c.execute("DELETE FROM removed WHERE index_key=? AND gen<=?", (key, horizon)).rowcount:
            c.execute("UPDATE indexes SET pruned_gen=MAX(pruned_gen, ?) WHERE key=?", (horizon, key))

    def replace_vectors(
        self, key: str, updates: Sequence[tuple[int, NDArray[np.float32]]], model: str, old_model: str
    ) -> int:
        """Re-embedding: new vectors for rows still made by ``old_model`` (others are left alone,
        so two processes migrating at once cannot overwrite each other's newer work)."""
        with self.write() as c:
            gen, _ = self._bump(c, key)
            n = 0
            for i, vec in updates:
                n += c.execute(
                    "UPDATE faces SET vector=?, model=?, gen=? WHERE index_key=? AND id=? AND model=?",
                    (np.asarray(vec, np.float32).tobytes(), model, gen, key, int(i), old_model),
                ).rowcount
        return n

    # --- reads ------------------------------------------------------------------------
    def changes(self, key: str, since: int | None, model: str, dim: int) -> Changes:
        """Rows made by ``model`` that changed after generation ``since`` (all when None)."""
        with self.read() as c:
            row = c.execute("SELECT gen, pruned_gen FROM indexes WHERE key=?", (key,)).fetchone()
            if row is None:
                raise unknown_index(key)
            gen, pruned = int(row[0]), int(row[1])
            full = since is None or since < pruned
            lo = -1 if full else since
            rows = c.execute(
                "SELECT id, label, vector FROM faces WHERE index_key=? AND gen>? AND model=? ORDER BY id",
                (key, lo, model),
            ).fetchall()
            removed = (
                []
                if full
                else [r[0] for r in c.execute("SELECT id FROM removed WHERE index_key=? AND gen>?", (key, lo))]
            )
            if not full:
                # A row re-stamped by another model (or re-embedded) must leave the index first.
                removed += [
                    r[0]
                    for r in c.execute(
                        "SELECT id FROM faces WHERE index_key=? AND gen>? AND model<>?", (key, lo, model)
                    )
                ]
        vecs = np.empty((len(rows), dim), np.float32)
        for n, r in enumerate(rows):
            v = np.frombuffer(r[2], np.float32)
            if v.shape[0] != dim:
                raise ModelInvalid(f"gallery vector {key}/{r[0]} has {v.shape[0]} dims, the feature model makes {dim}")
            vecs[n] = v
        return Changes(
            gen, full, np.array([r[0] for r in rows], np.int64), [r[1] for r in rows], vecs, np.array(removed, np.int64)
        )

    def stale(self, model: str, limit: int = 64) -> list[StaleFace]:
        """Up to ``limit`` rows whose vectors another feature model made."""
        with self.read() as c:
            return [
                StaleFace(*r)
                for r in c.execute(
                    "SELECT index_key, id, model, crop FROM faces WHERE model<>? LIMIT ?", (model, limit)
                )
            ]

    def count_stale(self, model: str) -> int:
        with self.read() as c:
            return int(c.execute("SELECT COUNT(*) FROM faces WHERE model<>?", (model,)).fetchone()[0])

    def id_map(self, key: str) -> dict[int, str]:
        with self.read() as c:
            if c.execute("SELECT 1 FROM indexes WHERE key=?", (key,)).fetchone() is None:
                raise unknown_index(key)
            return {
                int(i): lab for i, lab in c.execute("SELECT id, label FROM faces WHERE index_key=? ORDER BY id", (key,))
            }

    def list_faces(
        self, key: str, label: str | None = None, start: int = 0, length: int = 100
    ) -> tuple[int, list[FaceEntry]]:
        """(total, page) of {id, label, created} ordered by id, optionally for one label."""
        where, args = "index_key=?", [key]
        if label is not None:
            where, args = where + " AND label=?", args + [label]
        with self.read() as c:
            if c.execute("SELECT 1 FROM indexes WHERE key=?", (key,)).fetchone() is None:
                raise unknown_index(key)
            total = int(c.execute(f"SELECT COUNT(*) FROM faces WHERE {where}", args).fetchone()[0])
            page: list[FaceEntry] = [
                {"id": int(i), "label": lab, "created": float(t)}
                for i, lab, t in c.execute(
                    f"SELECT id, label, created FROM faces WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                    args + [length, start],
                )
            ]
        return total, page

    def stats(self) -> list[IndexStats]:
        with self.read() as c:
            return [
                {"key": k, "faces": int(n), "labels": int(labels), "gen": int(g), "created": float(t)}
                for k, t, g, n, labels in c.execute(
                    "SELECT i.key, i.created, i.gen, COUNT(f.id), COUNT(DISTINCT f.label) FROM indexes i "
                    "LEFT JOIN faces f ON f.index_key=i.key GROUP BY i.key ORDER BY i.created, i.key"
                )
            ]

    def crop(self, key: str, face_id: int) -> bytes:
        with self.read() as c:
            row = c.execute("SELECT crop FROM faces WHERE index_key=? AND id=?", (key, int(face_id))).fetchone()
        if row is None:
            raise InvalidArgument(f"no face {face_id} in index {preview(key)}")
        return bytes(row[0])

    # --- backup -------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> None:
        """A consistent copy of the whole gallery (SQLite online backup), written atomically."""
        from ..fsutil import fsync_dir

        dest = Path(path)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        out = sqlite3.connect(tmp)
        try:
            with self._lock:
                self.conn.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            out.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)

    def import_file(self, path: str | os.PathLike[str], replace: bool = False) -> dict[str, int]:
        """Copy every index of an exported gallery in, in one transaction; {key: faces}.

        Ids, labels, vectors, crops and model fingerprints are kept. An index key that exists
        here is an error unless ``replace``; replaced indexes restart above their old
        generation so every process reloads them.
        """
        src = Path(path)
        try:
            probe = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
            try:
                row = probe.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            finally:
                probe.close()
        except sqlite3.Error as exc:
            raise InvalidArgument(f"{src} is not a gallery export: {exc}") from None
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise InvalidArgument(f"{src} is not a gallery export of schema {SCHEMA_VERSION}")
        with self._lock:
            c = self.conn
            c.execute("ATTACH DATABASE ? AS src", (f"file:{src}?mode=ro",))
            try:
                with self._tx(c, write=True):
                    keys = [
                        (k, int(n)) for k, n in c.execute("SELECT key, next_id FROM src.indexes ORDER BY created, key")
                    ]
                    clash = [k for k, _ in keys if c.execute("SELECT 1 FROM indexes WHERE key=?", (k,)).fetchone()]
                    if clash and not replace:
                        raise InvalidArgument(f"index(es) {', '.join(clash)} already exist; import with replace")
                    out = {}
                    for key, next_id in keys:
                        self._drop(c, key)
                        gen = self._insert_index(c, key, next_id=next_id)
                        out[key] = c.execute(
                            "INSERT INTO faces(index_key, id, label, vector, model, crop, created, gen) "
                            "SELECT index_key, id, label, vector, model, crop, created, ? FROM src.faces "
                            "WHERE index_key=?",
                            (gen, key),
                        ).rowcount
            finally:
                c.execute("DETACH DATABASE src")
        return out
