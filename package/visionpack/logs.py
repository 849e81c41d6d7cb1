"""Log files shared by a gunicorn master and its workers: one line per event, rotated by size.

Every process of a deploy appends to the same ``error.log`` / ``access.log``. The standard
``RotatingFileHandler`` rotates per process, so with several workers each one renames the file
under the others and lines are lost or rotation runs N times. Here a rotation is decided and
done under an ``flock`` on a sibling lock file, by whichever process first sees the file over
the limit; the others notice the new inode on their next write and reopen. Writes are
``O_APPEND``, so lines of different processes never interleave inside a line.
"""

from __future__ import annotations

import fcntl
import logging
import os
from typing import Any

LINE_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class SharedRotatingFileHandler(logging.FileHandler):
    """A FileHandler that rotates ``path`` -> ``path.1`` ... ``path.N`` past ``max_bytes``."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=False)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock_path = path + ".lock"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError:
            super().emit(record)  # a read-only log dir still logs to the open stream
            return
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._follow_or_rotate()
            super().emit(record)
        finally:
            os.close(lock_fd)  # closing drops the flock

    def _follow_or_rotate(self) -> None:
        """Reopen when another process rotated; rotate when the file is over the limit."""
        try:
            st = os.stat(self.baseFilename)
        except FileNotFoundError:
            st = None
        if self.stream is not None and (st is None or st.st_ino != os.fstat(self.stream.fileno()).st_ino):
            self._reopen()
            return
        if st is not None and self.max_bytes > 0 and st.st_size >= self.max_bytes:
            self._rotate()
            self._reopen()

    def _rotate(self) -> None:
        base = self.baseFilename
        if self.backups <= 0:
            os.truncate(base, 0)
            return
        for i in range(self.backups - 1, 0, -1):
            src = f"{base}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{base}.{i + 1}")
        os.replace(base, f"{base}.1")

    def _reopen(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()


def file_handler(path: str, max_bytes: int, backups: int, fmt: str = LINE_FORMAT) -> logging.Handler:
    handler = SharedRotatingFileHandler(path, max_bytes, backups)
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def gunicorn_logger_class(max_bytes: int, backups: int) -> type:
    """gunicorn's Logger with its file handlers replaced by rotating shared ones."""
    from gunicorn import glogging

    # _set_handler and _get_gunicorn_handler are gunicorn's private API, absent from its stubs.
    class Logger(glogging.Logger):
        def _set_handler(self, log: logging.Logger, output: Any, fmt: logging.Formatter, stream: Any = None) -> None:
            if output is None or output == "-":
                super()._set_handler(log, output, fmt, stream)  # type: ignore[misc]  # private, not in the stubs
                return
            old = self._get_gunicorn_handler(log)  # type: ignore[attr-defined]  # private, not in the stubs
            if old:
                log.handlers.remove(old)
            handler = SharedRotatingFileHandler(output, max_bytes, backups)
            handler.setFormatter(fmt)
            handler._gunicorn = True  # type: ignore[attr-defined]  # how gunicorn finds its own handler
            log.addHandler(handler)

    return Logger
