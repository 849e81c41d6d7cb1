"""The PostgreSQL store's export and import, in the one export format every store shares.

An export is a SQLite database of ``sqlite_store``'s schema (store.py: "Export files"), so a
backup of a PostgreSQL gallery restores into SQLite and the reverse. Both run inside the
caller's transaction: the export reads one REPEATABLE READ snapshot, the import writes in one
transaction, so a failed import changes nothing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import InvalidArgument
from ..fsutil import fsync_dir
from .sqlite_store import _SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[tuple[Any, ...]]

BATCH = 500  # rows per round trip: crops are kilobytes each, so memory stays small at 1M faces


def export_to(c: Conn, dest: Path) -> None:
    """Write the gallery ``c``'s snapshot sees to ``dest`` atomically."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    out = sqlite3.connect(tmp, isolation_level=None)
    try:
        out.executescript(_SCHEMA)
        out.execute("BEGIN")
        out.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        floor = c.execute("SELECT value FROM gallery_meta WHERE key='gen_floor'").fetchone()
        if floor is not None:
            out.execute("INSERT INTO meta (key, value) VALUES ('gen_floor', ?)", (str(int(floor[0])),))
        out.executemany(
            "INSERT INTO indexes (key, created, gen, next_id, pruned_gen) VALUES (?, ?, ?, ?, ?)",
            c.execute("SELECT key, created, gen, next_id, pruned_gen FROM gallery_indexes").fetchall(),
        )
        with c.cursor(name="gallery_export") as cur:  # server-side: never the whole gallery in memory
            cur.execute("SELECT index_key, id, label, vector, model, crop, created, gen FROM gallery_faces")
            while rows := cur.fetchmany(BATCH):
                out.executemany(
                    "INSERT INTO faces (index_key, id, label, vector, model, crop, created, gen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(k, i, lab, bytes(v), m, bytes(cr), t, g) for k, i, lab, v, m, cr, t, g in rows],
                )
        out.executemany(
            "INSERT INTO removed (index_key, id, gen) VALUES (?, ?, ?)",
            c.execute("SELECT index_key, id, gen FROM gallery_removed").fetchall(),
        )
        out.execute("COMMIT")
    finally:
        out.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def import_from(
    c: Conn,
    src: Path,
    replace: bool,
    drop: Callable[[Conn, str], bool],
    insert_index: Callable[..., int | None],
) -> tuple[dict[str, int], dict[str, int]]:
    """Copy every index of the export ``src`` in; ({key: faces}, {key: new generation})."""
    try:
        db = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InvalidArgument(f"{src} is not a gallery export: {exc}") from None
    try:
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.Error as exc:
            raise InvalidArgument(f"{src} is not a gallery export: {exc}") from None
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise InvalidArgument(f"{src} is not a gallery export of schema {SCHEMA_VERSION}")
        keys = [(str(k), int(n)) for k, n in db.execute("SELECT key, next_id FROM indexes ORDER BY created, key")]
        have = {str(r[0]) for r in c.execute("SELECT key FROM gallery_indexes")}
        clash = [k for k, _ in keys if k in have]
        if clash and not replace:
            raise InvalidArgument(f"index(es) {', '.join(clash)} already exist; import with replace")
        counts: dict[str, int] = {}
        gens: dict[str, int] = {}
        for key, next_id in keys:
            drop(c, key)
            gen = insert_index(c, key, next_id=next_id)
            gens[key] = gen if gen is not None else 0  # (ignore=False: it raises or returns one)
            cur = db.execute(
                "SELECT id, label, vector, model, crop, created FROM faces WHERE index_key=? ORDER BY id", (key,)
            )
            n = 0
            while rows := cur.fetchmany(BATCH):
                with c.cursor() as pc:
                    pc.executemany(
                        "INSERT INTO gallery_faces (index_key, id, label, vector, model, crop, created, gen) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        [(key, i, lab, bytes(v), m, bytes(cr), t, gen) for i, lab, v, m, cr, t in rows],
                    )
                n += len(rows)
            counts[key] = n
        return counts, gens
    finally:
        db.close()
