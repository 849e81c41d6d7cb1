"""The PostgreSQL gallery's schema as numbered migrations, and the one function that applies them.

Each migration is SQL run in one transaction (PostgreSQL's DDL is transactional, so a failed
migration leaves the previous version whole) under an advisory lock, so servers and the
installer starting at once migrate exactly once. ``gallery_schema`` holds the version reached
and ``compat``: the oldest release's schema version that may still use the database. A
migration that only adds (a column, an index) keeps ``compat``, so a node still on the older
release keeps serving during a rolling upgrade and a rolled-back release still starts; one
that changes what old code relies on raises it, and older code then refuses to start instead
of corrupting the gallery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ..errors import ModelInvalid

if TYPE_CHECKING:
    import psycopg


class Migration(NamedTuple):
    version: int
    compat: int  # the oldest schema version whose code can still use the database after it
    what: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        1,
        "indexes, faces, tombstones, generation floor",
        """
        CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
        CREATE TABLE gallery_indexes (
            key TEXT PRIMARY KEY,
            created DOUBLE PRECISION NOT NULL,
            gen BIGINT NOT NULL,
            next_id BIGINT NOT NULL DEFAULT 0,
            pruned_gen BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE gallery_faces (
            index_key TEXT NOT NULL REFERENCES gallery_indexes(key) ON DELETE CASCADE,
            id BIGINT NOT NULL,
            label TEXT NOT NULL,
            vector BYTEA NOT NULL,
            model TEXT NOT NULL,
            crop BYTEA NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            gen BIGINT NOT NULL,
            PRIMARY KEY (index_key, id)
        );
        -- No index on model: every query naming it also names (index_key, gen) or asks model <>,
        -- and with statistics not yet gathered after a bulk load, one on (model, index_key)
        -- lured the planner into walking the whole index for a one-row catch-up.
        CREATE INDEX gallery_faces_gen ON gallery_faces (index_key, gen);
        CREATE TABLE gallery_removed (
            index_key TEXT NOT NULL REFERENCES gallery_indexes(key) ON DELETE CASCADE,
            id BIGINT NOT NULL,
            gen BIGINT NOT NULL
        );
        CREATE INDEX gallery_removed_gen ON gallery_removed (index_key, gen);
        """,
    ),
    Migration(
        2,
        1,
        "re-embedding claims (which server re-embeds a row, until when); lookups by label",
        """
        ALTER TABLE gallery_faces ADD COLUMN claimed_until DOUBLE PRECISION;
        CREATE INDEX gallery_faces_label ON gallery_faces (index_key, label);
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
# One constant key for pg_advisory_xact_lock: "only one migrator at a time" ('vpgs' in hex).
MIGRATION_LOCK = 0x76706773

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS gallery_schema (
    one INT PRIMARY KEY DEFAULT 1 CHECK (one = 1),
    version INT NOT NULL,
    compat INT NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_migrations (
    version INT PRIMARY KEY,
    what TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


def current(conn: psycopg.Connection[tuple[int, ...]]) -> tuple[int, int]:
    """(version, compat) of the database; (0, 0) when it has no gallery yet."""
    row = conn.execute(
        "SELECT version, compat FROM gallery_schema WHERE one = 1"
        if _has_table(conn, "gallery_schema")
        else "SELECT 0, 0 WHERE false"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _has_table(conn: psycopg.Connection[tuple[int, ...]], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def migrate(conn: psycopg.Connection[tuple[int, ...]], upto: int = SCHEMA_VERSION) -> list[int]:
    """Bring the database to ``upto`` (this release's version); returns the versions applied.

    ``conn`` must not be inside a transaction. A database newer than this release is fine while
    its ``compat`` still admits this release; otherwise ModelInvalid says which is which.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_VERSION_TABLE)  # several statements: psycopg sends them as one simple query
        version, compat = current(conn)
        if compat > SCHEMA_VERSION:
            raise ModelInvalid(
                f"the gallery database is at schema {version}, which needs a release reading schema "
                f"{compat} or newer; this release reads {SCHEMA_VERSION}: upgrade this server's package"
            )
        for m in MIGRATIONS:
            if version < m.version <= upto:
                conn.execute(m.sql)
                conn.execute("INSERT INTO gallery_migrations (version, what) VALUES (%s, %s)", (m.version, m.what))
                conn.execute(
                    "INSERT INTO gallery_schema (one, version, compat) VALUES (1, %s, %s) "
                    "ON CONFLICT (one) DO UPDATE SET version = excluded.version, "
                    "compat = GREATEST(gallery_schema.compat, excluded.compat)",
                    (m.version, m.compat),
                )
                applied.append(m.version)
    return applied
