"""A PostgreSQL gallery's connection settings: the DSN checked, the password read, connections opened.

The DSN lands in config.yml and, as ``where()``, in messages and ``/ready``, so it never holds
the password: that comes from ``gallery.password_file`` (its first line) or from libpq's own
``PGPASSWORD``/``PGPASSFILE`` in the service's environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo as pgconninfo

from ..errors import ConfigInvalid

CONNECT_TIMEOUT_S = 3
# Dead connections are noticed in seconds, not the kernel's minutes (a pulled cable, a dead host).
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2}


def read_password(path: str) -> str:
    """The password file's first line (a trailing newline is not part of it)."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()[0] if Path(path).stat().st_size else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"gallery.password_file {path}: cannot read it ({type(exc).__name__})") from None


def parse_dsn(dsn: str) -> dict[str, Any]:
    """The DSN's parameters; refused when it carries a password (it would land in config.yml)."""
    if not dsn:
        raise ConfigInvalid("gallery.store postgresql needs gallery.dsn, e.g. 'host=db1 dbname=visionpack user=vp'")
    try:
        params = pgconninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ConfigInvalid("gallery.dsn is not a libpq connection string or URI") from None
    if "password" in params:
        raise ConfigInvalid(
            "gallery.dsn must not hold the password: put it in the file gallery.password_file names "
            "(mode 0640), or in PGPASSWORD / PGPASSFILE of the service's environment"
        )
    return params


def where(params: dict[str, Any]) -> str:
    """host:port/dbname: which server, never who or with what password."""
    db = params.get("dbname") or params.get("user") or ""
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{db}"


def connect(params: dict[str, Any], password_file: str, autocommit: bool) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection that notices a dead server in seconds; psycopg.OperationalError if none."""
    full = {"connect_timeout": CONNECT_TIMEOUT_S, **_KEEPALIVE, **params}
    if password_file:
        full["password"] = read_password(password_file)
    return psycopg.connect(autocommit=autocommit, application_name="visionpack-gallery", **full)
