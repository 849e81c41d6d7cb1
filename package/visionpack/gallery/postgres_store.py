"""The PostgreSQL gallery store: one database shared by every server of a scaled-out face deploy.

How it keeps the rules of ``store.py`` (the same as ``sqlite_store.py``, with a server instead
of a file):

* Every write is one transaction. The index's row is updated first (``gen``, ``next_id``), so
  its row lock serialises writers of one index across servers: ids are unique, increase in
  commit order and are never reused. The write notifies ``pg_sync.CHANNEL`` at commit.
* Reads that must agree with a generation (``changes``, ``export``) run in one REPEATABLE READ
  snapshot.
* ``generation`` is answered from ``pg_sync.GenerationFeed`` (LISTEN/NOTIFY plus a periodic
  generation check), not by a query per search; while the database is unreachable it answers
  the last generation synced, so searches continue over the last synced index.
* The database unreachable: every call that needs it raises ``GalleryUnavailable`` (503); a
  write either committed or did not (a connection lost during COMMIT itself says so, the one
  case whose outcome the server cannot know). The next call reconnects.
* Re-embedding: ``stale`` claims the rows it returns (``claimed_until``, with ``FOR UPDATE SKIP
  LOCKED``), so two servers never re-embed the same rows; ``changes`` returns only rows of the
  asking model, so a search never mixes two models' vectors.
* Secure deletion: PostgreSQL keeps a deleted row's bytes until VACUUM reuses its space;
  docs/scale-out.md says how an operator bounds that (autovacuum, an encrypted volume).
* The schema is created and migrated by ``pg_schema.migrate`` when the store opens: the
  installer's start of a release (install, upgrade) or any gallery CLI command given the config.

The password never appears in ``gallery.dsn``: it comes from ``gallery.password_file`` or
libpq's own ``PGPASSWORD``/``PGPASSFILE``, and messages name the server by ``where()`` only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from ..config import GalleryConfig
from ..errors import GalleryUnavailable, InvalidArgument, ModelInvalid
from ..services.fields import preview
from .pg_conninfo import connect, parse_dsn, where
from .pg_schema import migrate as migrate_schema
from .pg_sync import CHANNEL, GenerationFeed
from .sqlite_store import KEEP_TOMBSTONES
from .store import (
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

if TYPE_CHECKING:
    from numpy.typing import NDArray

Conn = psycopg.Connection[tuple[Any, ...]]
CLAIM_S = 120.0  # a re-embedding claim's lease: a server killed mid-batch frees its rows after it
CREATE_LOCK = 0x76706769  # advisory lock held while an index is created ('vpgi'): limit counting


class PostgresStore:
    """A ``GalleryStore`` on a PostgreSQL database; thread-safe (one connection per process, locked)."""

    def __init__(
        self, dsn: str, *, password_file: str = "", migrate: bool = True, feed_check_s: float | None = None
    ) -> None:
        self._params = parse_dsn(dsn)
        self._password_file = password_file
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._conn: Conn | None = None
        self.feed = GenerationFeed(lambda: self._connect(autocommit=True))
        if feed_check_s is not None:
            self.feed.check_s = feed_check_s
        if migrate:
            self.migrate()

    @classmethod
    def from_config(cls, settings: GalleryConfig, data_dir: str | os.PathLike[str]) -> PostgresStore:
        """The database ``settings.dsn`` names (``data_dir`` holds nothing of this store)."""
        return cls(settings.dsn, password_file=settings.password_file)

    def where(self) -> str:
        """The server and database, without credentials: for messages, logs and /ready."""
        return where(self._params)

    # --- connections --------------------------------------------------------------------
    def _connect(self, autocommit: bool = True) -> Conn:
        try:
            return connect(self._params, self._password_file, autocommit)
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException, committing: bool = False) -> GalleryUnavailable:
        # The exception's class only: libpq's messages can quote the connection string.
        what = (
            "the connection was lost while committing: the write may or may not have been applied"
            if committing
            else "nothing was written"
        )
        return GalleryUnavailable(f"the gallery database {self.where()} is unreachable ({type(exc).__name__}); {what}")

    def _connection(self) -> Conn:
        if os.getpid() != self._pid:
            # A connection must not cross a fork: the child opens its own, the parent keeps its
            # (psycopg never closes a connection from a process that did not open it).
            self._pid, self._conn = os.getpid(), None
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Conn]:
        """One transaction (REPEATABLE READ, read-only, for reads); GalleryUnavailable when the
        database cannot be reached, and the broken connection is replaced at the next call."""
        with self._lock:
            committing = False
            try:
                conn = self._connection()
                with conn.transaction():
                    if not write:
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield conn
                    committing = write
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if self._conn is not None and not self._conn.closed:
                    self._conn.close()
                self._conn = None
                raise self._unavailable(exc, committing) from None

    def migrate(self) -> list[int]:
        """Create or migrate the schema (pg_schema); returns the versions applied."""
        with self._lock:
            try:
                conn = self._connection()
                return migrate_schema(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._conn = None
                raise self._unavailable(exc) from None

    def close(self) -> None:
        self.feed.stop()
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def sync_state(self) -> dict[str, Any]:
        return {"store": "postgresql", "database": self.where(), **self.feed.state()}

    # --- indexes ----------------------------------------------------------------------
    @staticmethod
    def _notify(c: Conn, key: str, gen: int | None) -> None:
        c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{'drop' if gen is None else gen} {key}"))

    def _insert_index(
        self, c: Conn, key: str, ignore: bool = False, next_id: int = 0, limit: int | None = None
    ) -> int | None:
        """A new index above every generation a dropped one of the same key reached (None:
        ``ignore`` and it exists). The advisory lock makes the limit count race-free."""
        check_key(key)
        c.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
        if c.execute("SELECT 1 FROM gallery_indexes WHERE key=%s", (key,)).fetchone() is not None:
            if ignore:
                return None
            raise InvalidArgument(f"indexKey {preview(key)} already exists")
        if limit is not None:
            have = int(_one(c, "SELECT COUNT(*) FROM gallery_indexes"))
            if have >= limit:
                raise key_limit_reached(have)
        row = c.execute("SELECT value FROM gallery_meta WHERE key='gen_floor'").fetchone()
        gen = (int(row[0]) if row else 0) + 1
        c.execute(
            "INSERT INTO gallery_indexes (key, created, gen, next_id, pruned_gen) VALUES (%s, %s, %s, %s, %s)",
            (key, time.time(), gen, next_id, gen),
        )
        self._notify(c, key, gen)
        return gen

    def _drop(self, c: Conn, key: str) -> bool:
        row = c.execute("SELECT gen FROM gallery_indexes WHERE key=%s FOR UPDATE", (key,)).fetchone()
        if row is None:
            return False
        c.execute(
            "INSERT INTO gallery_meta (key, value) VALUES ('gen_floor', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = GREATEST(gallery_meta.value, excluded.value)",
            (int(row[0]),),
        )
        c.execute("DELETE FROM gallery_indexes WHERE key=%s", (key,))
        self._notify(c, key, None)
        return True

    def ensure_index(self, key: str, limit: int | None = None) -> None:
        with self._tx() as c:
            # The common case (EasyDL's add to an existing group): a read, no write lock at all.
            if c.execute("SELECT 1 FROM gallery_indexes WHERE key=%s", (key,)).fetchone() is not None:
                return
        with self._tx(write=True) as c:
            gen = self._insert_index(c, key, ignore=True, limit=limit)
        if gen is not None:
            self.feed.saw(key, gen)

    def index_keys(self) -> list[str]:
        with self._tx() as c:
            return [r[0] for r in c.execute("SELECT key FROM gallery_indexes ORDER BY created, key")]

    def generation(self, key: str) -> int:
        """From the feed (no query) when it has the key; else one primary-key lookup."""
        self.feed.start()
        gen = self.feed.known(key)
        if gen is not None:
            return gen
        with self._tx() as c:
            row = c.execute("SELECT gen FROM gallery_indexes WHERE key=%s", (key,)).fetchone()
        if row is None:
            raise unknown_index(key)
        self.feed.saw(key, int(row[0]))
        return int(row[0])

    def drop_index(self, key: str, recreate: bool = False) -> int:
        with self._tx(write=True) as c:
            n = int(_one(c, "SELECT COUNT(*) FROM gallery_faces WHERE index_key=%s", (key,)))
            if not self._drop(c, key):
                raise unknown_index(key)
            gen = self._insert_index(c, key) if recreate else None
        self.feed.forget(key)
        if gen is not None:
            self.feed.saw(key, gen)
        return n

    # --- writes -----------------------------------------------------------------------
    def _bump(self, c: Conn, key: str, n: int = 0) -> tuple[int, int]:
        """The index's next generation and first new id, row-locked until commit."""
        row = c.execute(
            "UPDATE gallery_indexes SET gen = gen + 1, next_id = next_id + %s WHERE key=%s RETURNING gen, next_id",
            (n, key),
        ).fetchone()
        if row is None:
            raise unknown_index(key)
        gen = int(row[0])
        self._notify(c, key, gen)
        return gen, int(row[1]) - n

    def add(
        self, key: str, faces: Sequence[NewFace], model: str, *, create: bool = False, limit: int | None = None
    ) -> list[int]:
        for f in faces:
            check_label(f.label)
        with self._tx(write=True) as c:
            if create:
                self._insert_index(c, key, limit=limit)
            gen, first = self._bump(c, key, len(faces))
            ids = list(range(first, first + len(faces)))
            now = time.time()
            with c.cursor() as cur:
                cur.executemany(
                    "INSERT INTO gallery_faces (index_key, id, label, vector, model, crop, created, gen) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (key, i, f.label, np.asarray(f.vector, np.float32).tobytes(), model, f.crop_png, now, gen)
                        for i, f in zip(ids, faces)
                    ],
                )
        self.feed.saw(key, gen)
        return ids

    def remove(self, key: str, ids: Sequence[int]) -> list[int]:
        want = list(dict.fromkeys(int(x) for x in ids))
        with self._tx(write=True) as c:
            gen, _ = self._bump(c, key)
            gone = sorted(
                int(r[0])
                for r in c.execute(
                    "DELETE FROM gallery_faces WHERE index_key=%s AND id = ANY(%s) RETURNING id", (key, want)
                )
            )
            c.execute(
                "INSERT INTO gallery_removed (index_key, id, gen) SELECT %s, unnest(%s::bigint[]), %s",
                (key, gone, gen),
            )
            horizon = gen - KEEP_TOMBSTONES
            if horizon > 0:
                c.execute("DELETE FROM gallery_removed WHERE index_key=%s AND gen<=%s", (key, horizon))
                c.execute("UPDATE gallery_indexes SET pruned_gen=GREATEST(pruned_gen, %s) WHERE key=%s", (horizon, key))
        self.feed.saw(key, gen)
        # In the caller's order, as the SQLite store answers.
        order = {i: n for n, i in enumerate(want)}
        return sorted(gone, key=order.__getitem__)

    def remove_label(self, key: str, label: str) -> list[int]:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM gallery_indexes WHERE key=%s", (key,)).fetchone() is None:
                raise unknown_index(key)
            ids = [
                int(r[0])
                for r in c.execute(
                    "SELECT id FROM gallery_faces WHERE index_key=%s AND label=%s ORDER BY id", (key, label)
                )
            ]
        return self.remove(key, ids) if ids else []

    def replace_vectors(
        self, key: str, updates: Sequence[tuple[int, NDArray[np.float32]]], model: str, old_model: str
    ) -> int:
        with self._tx(write=True) as c:
            gen, _ = self._bump(c, key)
            n = 0
            for i, vec in updates:
                n += c.execute(
                    "UPDATE gallery_faces SET vector=%s, model=%s, gen=%s, claimed_until=NULL "
                    "WHERE index_key=%s AND id=%s AND model=%s",
                    (np.asarray(vec, np.float32).tobytes(), model, gen, key, int(i), old_model),
                ).rowcount
        self.feed.saw(key, gen)
        return n

    # --- reads ------------------------------------------------------------------------
    def changes(self, key: str, since: int | None, model: str, dim: int) -> Changes:
        with self._tx() as c:
            row = c.execute("SELECT gen, pruned_gen FROM gallery_indexes WHERE key=%s", (key,)).fetchone()
            if row is None:
                raise unknown_index(key)
            gen, pruned = int(row[0]), int(row[1])
            full = since is None or since < pruned
            lo = -1 if full or since is None else since
            rows = c.execute(
                "SELECT id, label, vector FROM gallery_faces WHERE index_key=%s AND gen>%s AND model=%s ORDER BY id",
                (key, lo, model),
            ).fetchall()
            removed: list[int] = []
            if not full:
                removed = [
                    int(r[0])
                    for r in c.execute(
                        "SELECT id FROM gallery_removed WHERE index_key=%s AND gen>%s "
                        "UNION ALL SELECT id FROM gallery_faces WHERE index_key=%s AND gen>%s AND model<>%s",
                        (key, lo, key, lo, model),
                    )
                ]
        vecs = np.empty((len(rows), dim), np.float32)
        for n, r in enumerate(rows):
            v = np.frombuffer(r[2], np.float32)
            if v.shape[0] != dim:
                raise ModelInvalid(f"gallery vector {key}/{r[0]} has {v.shape[0]} dims, the feature model makes {dim}")
            vecs[n] = v
        self.feed.saw(key, gen)
        return Changes(
            gen, full, np.array([r[0] for r in rows], np.int64), [r[1] for r in rows], vecs, np.array(removed, np.int64)
        )

    def stale(self, model: str, limit: int = 64) -> list[StaleFace]:
        """Up to ``limit`` rows another model made, claimed for ``CLAIM_S`` by this caller: a
        second server asking at the same time gets other rows (SKIP LOCKED), never these."""
        now = time.time()
        with self._tx(write=True) as c:
            return [
                StaleFace(str(k), int(i), str(m), bytes(crop))
                for k, i, m, crop in c.execute(
                    "UPDATE gallery_faces f SET claimed_until=%s FROM ("
                    " SELECT index_key, id FROM gallery_faces WHERE model<>%s"
                    " AND (claimed_until IS NULL OR claimed_until<%s) LIMIT %s FOR UPDATE SKIP LOCKED) s "
                    "WHERE f.index_key=s.index_key AND f.id=s.id RETURNING f.index_key, f.id, f.model, f.crop",
                    (now + CLAIM_S, model, now, limit),
                )
            ]

    def count_stale(self, model: str) -> int:
        with self._tx() as c:
            return int(_one(c, "SELECT COUNT(*) FROM gallery_faces WHERE model<>%s", (model,)))

    def id_map(self, key: str) -> dict[int, str]:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM gallery_indexes WHERE key=%s", (key,)).fetchone() is None:
                raise unknown_index(key)
            return {
                int(i): str(lab)
                for i, lab in c.execute("SELECT id, label FROM gallery_faces WHERE index_key=%s ORDER BY id", (key,))
            }

    def list_faces(
        self, key: str, label: str | None = None, start: int = 0, length: int = 100
    ) -> tuple[int, list[FaceEntry]]:
        where, args = ("index_key=%s AND label=%s", [key, label]) if label is not None else ("index_key=%s", [key])
        with self._tx() as c:
            if c.execute("SELECT 1 FROM gallery_indexes WHERE key=%s", (key,)).fetchone() is None:
                raise unknown_index(key)
            total = int(_one(c, f"SELECT COUNT(*) FROM gallery_faces WHERE {where}", args))
            page: list[FaceEntry] = [
                {"id": int(i), "label": str(lab), "created": float(t)}
                for i, lab, t in c.execute(
                    f"SELECT id, label, created FROM gallery_faces WHERE {where} ORDER BY id LIMIT %s OFFSET %s",
                    [*args, length, start],
                )
            ]
        return total, page

    def stats(self) -> list[IndexStats]:
        with self._tx() as c:
            return [
                {"key": str(k), "faces": int(n), "labels": int(labels), "gen": int(g), "created": float(t)}
                for k, t, g, n, labels in c.execute(
                    "SELECT i.key, i.created, i.gen, COUNT(f.id), COUNT(DISTINCT f.label) FROM gallery_indexes i "
                    "LEFT JOIN gallery_faces f ON f.index_key=i.key GROUP BY i.key ORDER BY i.created, i.key"
                )
            ]

    def crop(self, key: str, face_id: int) -> bytes:
        with self._tx() as c:
            row = c.execute(
                "SELECT crop FROM gallery_faces WHERE index_key=%s AND id=%s", (key, int(face_id))
            ).fetchone()
        if row is None:
            raise InvalidArgument(f"no face {face_id} in index {preview(key)}")
        return bytes(row[0])

    # --- backup -------------------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> None:
        from .pg_backup import export_to

        with self._tx() as c:
            export_to(c, Path(path))

    def import_file(self, path: str | os.PathLike[str], replace: bool = False) -> dict[str, int]:
        from .pg_backup import import_from

        with self._tx(write=True) as c:
            out, gens = import_from(c, Path(path), replace, self._drop, self._insert_index)
        for key, gen in gens.items():
            self.feed.forget(key)
            self.feed.saw(key, gen)
        return out


def _one(c: Conn, sql: str, args: Sequence[Any] = ()) -> Any:
    row = c.execute(sql, args).fetchone()
    return row[0] if row else None
