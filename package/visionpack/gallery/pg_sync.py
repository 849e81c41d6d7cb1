"""Every index's generation as one process last saw it, kept current by PostgreSQL's LISTEN/NOTIFY.

Each write through any server notifies ``CHANNEL`` with ``"<gen> <key>"`` (``"drop <key>"`` for
a dropped index) when it commits. One daemon thread per process listens on its own connection
and records what it hears, so a search asks this map, not the database, whether its faiss copy
is current, and a write on server A reaches server C's next search within milliseconds.
A notification can be missed (the listener was reconnecting), so every ``check_s`` the thread
also reads every index's generation from the database -- the generation check -- which bounds
how long a missed notification can hide a write. When the database is unreachable the map
keeps the last generations seen: searches go on over the last synced index, ``state()`` says
so, and the thread reconnects by itself.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import GalleryUnavailable

if TYPE_CHECKING:
    import psycopg

CHANNEL = "visionpack_gallery"
CHECK_S = 0.5  # the generation check's period: how long a missed notification can hide a write
RETRY_S = 1.0  # between reconnection attempts while the database is unreachable
log = logging.getLogger("visionpack.gallery")

Connect = Callable[[], "psycopg.Connection[tuple[Any, ...]]"]


class GenerationFeed:
    """index key -> generation, for one process; thread-safe, started lazily (after a fork too)."""

    def __init__(self, connect: Connect, check_s: float = CHECK_S, retry_s: float = RETRY_S) -> None:
        self._connect = connect
        self.check_s = check_s
        self.retry_s = retry_s
        self._gens: dict[str, int] = {}
        self._lock = threading.Lock()
        self._live = False  # listening, and one generation check done since (re)connecting
        self._synced_at: float | None = None  # wall time of the last generation check
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    # --- what the store asks -----------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            # A forked child has no thread of its parent's and must not trust its parent's view.
            self._pid, self._live, self._gens = os.getpid(), False, {}
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gallery-sync", daemon=True)
            self._thread.start()

    def known(self, key: str) -> int | None:
        """The generation last seen for ``key``; None when this process has none to offer."""
        return self._gens.get(key)

    @property
    def live(self) -> bool:
        return self._live

    def saw(self, key: str, gen: int) -> None:
        """A write of this process committed ``gen``: its own next search must see it."""
        with self._lock:
            if gen > self._gens.get(key, -1):
                self._gens[key] = gen

    def forget(self, key: str) -> None:
        with self._lock:
            self._gens.pop(key, None)

    def state(self) -> dict[str, Any]:
        age = None if self._synced_at is None else round(max(0.0, time.time() - self._synced_at), 3)
        out: dict[str, Any] = {"listening": self._live, "synced_s_ago": age}
        if self._error and not self._live:
            out["error"] = self._error
            out["degraded"] = (
                "the gallery database is unreachable: searches answer from the gallery as last synced, "
                f"gallery writes answer {GalleryUnavailable.slug} ({GalleryUnavailable.easydl_code}) until it is back"
            )
        return out

    def stop(self) -> None:
        self._stop.set()

    # --- the listener thread -----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                conn.execute(f"LISTEN {CHANNEL}")
                self._check(conn)
                if not self._live:
                    log.info("gallery: listening to the database for changes")
                self._live, self._error = True, None
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=self.check_s, stop_after=64):
                        self._heard(note.payload)
                    self._check(conn)
            except Exception as exc:  # noqa: BLE001  (any failure: the database is gone; reconnect)
                if self._stop.is_set():
                    return  # closed: its connection going away is no news
                if self._live or self._error is None:
                    # The class only: a driver message may quote the connection string.
                    log.warning("gallery: lost the database (%s); searching the last synced index", type(exc).__name__)
                self._live, self._error = False, type(exc).__name__
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001, S110  (closing a broken connection)
                        pass
            self._stop.wait(self.retry_s)

    def _heard(self, payload: str) -> None:
        head, _, key = payload.partition(" ")
        if head == "drop":
            self.forget(key)
        elif head.isdigit():
            self.saw(key, int(head))

    def _check(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        rows = conn.execute("SELECT key, gen FROM gallery_indexes").fetchall()
        with self._lock:
            old = self._gens
            # max: a write of this process may have committed after this read began.
            self._gens = {str(k): max(int(g), old.get(str(k), -1)) for k, g in rows}
        self._synced_at = time.time()
