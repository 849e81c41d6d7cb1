"""What ``trouble_shooting.sh`` asks of a PostgreSQL gallery: is the DSN reachable, which schema.

Run in the deploy's runtime (vp_diag/gallery_db.py, through ``store_factory.check_store``); it
never migrates and never prints a password (the DSN has none, the password file's content is
only handed to libpq).
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..config import GalleryConfig
from ..errors import ConfigInvalid
from .pg_conninfo import connect, parse_dsn, where
from .pg_schema import SCHEMA_VERSION, current


def check(settings: GalleryConfig) -> dict[str, Any]:
    """{store, database, reachable, error?, schema?, compat?, reads, faces?}."""
    out: dict[str, Any] = {"store": settings.store, "reads": SCHEMA_VERSION, "reachable": False}
    try:
        params = parse_dsn(settings.dsn)
        out["database"] = where(params)
        with connect(params, settings.password_file, autocommit=True) as c:
            out["reachable"] = True
            out["schema"], out["compat"] = current(c)
            if out["schema"]:
                row = c.execute("SELECT COUNT(*) FROM gallery_faces").fetchone()
                out["faces"] = int(row[0]) if row else 0
    except ConfigInvalid as exc:
        out["error"] = exc.detail
    except psycopg.Error as exc:
        # libpq's first line says why (refused, no such database, authentication failed); the
        # DSN it may quote holds no password (parse_dsn refuses one).
        out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return out
