"""The one place a gallery store kind becomes a store: ``open_store(cfg.gallery, cfg.data_dir)``.

A kind (``postgres_store.py``, say) is its own module, ``<kind>_store.py``, with a class implementing
``store.GalleryStore`` and a ``from_config(settings, data_dir)`` constructor; it is listed in
``STORES`` below and its name in ``config.GALLERY_STORES`` (which validates config.yml). Each
store module is imported only when a deploy names it, so no deploy loads a driver it does not use.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Union

from ..config import GalleryConfig
from ..errors import ConfigInvalid
from .store import GalleryStore

# Union, not `|`: this alias is evaluated at import, and the runtime may be CPython 3.9.
Opener = Callable[[GalleryConfig, Union[str, os.PathLike[str]]], GalleryStore]


def _sqlite(settings: GalleryConfig, data_dir: str | os.PathLike[str]) -> GalleryStore:
    from .sqlite_store import SqliteStore

    return SqliteStore.from_config(settings, data_dir)


def _postgresql(settings: GalleryConfig, data_dir: str | os.PathLike[str]) -> GalleryStore:
    from .postgres_store import PostgresStore

    return PostgresStore.from_config(settings, data_dir)


STORES: dict[str, Opener] = {"sqlite": _sqlite, "postgresql": _postgresql}


def open_store(settings: GalleryConfig, data_dir: str | os.PathLike[str]) -> GalleryStore:
    """The store ``settings`` names, for the deploy whose data directory is ``data_dir``."""
    opener = STORES.get(settings.store) if isinstance(settings.store, str) else None
    if opener is None:
        raise ConfigInvalid(
            f"gallery.store must be one of {', '.join(STORES)} (the gallery stores of this release), "
            f"got {settings.store!r}"
        )
    return opener(settings, data_dir)


def _postgresql_check(settings: GalleryConfig) -> dict[str, Any]:
    from .pg_check import check

    return check(settings)


# Kinds with a server to reach: what trouble_shooting.sh asks of them (reachable, schema version).
CHECKS: dict[str, Callable[[GalleryConfig], dict[str, Any]]] = {"postgresql": _postgresql_check}


def check_store(settings: GalleryConfig) -> dict[str, Any]:
    """The store's own diagnosis, without opening (or migrating) it; ``{"store": kind}`` when a
    kind has nothing to reach (SQLite: a file in the data directory, checked by file modes)."""
    checker = CHECKS.get(settings.store) if isinstance(settings.store, str) else None
    return checker(settings) if checker else {"store": settings.store}
