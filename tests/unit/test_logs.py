"""visionpack.logs: one file rotated by size without losing lines, its backups, a removed file, the
gunicorn logger class (shared by several processes: tests/integration/test_logs.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from visionpack import logs


def _write_lines(path: str, tag: str, n: int, max_bytes: int, backups: int) -> None:
    log = logging.getLogger(f"t.{tag}")
    log.propagate = False
    log.addHandler(logs.file_handler(path, max_bytes, backups, fmt="%(message)s"))
    log.setLevel(logging.INFO)
    for i in range(n):
        log.info("%s %05d %s", tag, i, "x" * 60)


def _all_lines(path: Path) -> list[str]:
    out: list[str] = []
    for f in sorted(path.parent.glob(path.name + "*")):
        if not f.name.endswith(".lock"):
            out += f.read_text().splitlines()
    return out


def test_only_the_configured_number_of_backups_is_kept(tmp_path):
    path = tmp_path / "access.log"
    _write_lines(str(path), "a", 3000, 10_000, 3)
    names = sorted(f.name for f in tmp_path.iterdir() if not f.name.endswith(".lock"))
    assert names == ["access.log", "access.log.1", "access.log.2", "access.log.3"]
    # The newest lines are in access.log, the ones before them at the end of .1.
    newest, older = path.read_text().splitlines(), (tmp_path / "access.log.1").read_text().splitlines()
    assert newest[-1].startswith("a 02999")
    assert int(older[-1].split()[1]) + 1 == int(newest[0].split()[1])


def test_zero_backups_truncates_in_place(tmp_path):
    path = tmp_path / "e.log"
    _write_lines(str(path), "z", 1000, 5_000, 0)
    assert [f.name for f in tmp_path.iterdir() if not f.name.endswith(".lock")] == ["e.log"]
    assert path.stat().st_size < 5_000 + 200


def test_a_file_removed_under_the_handler_is_recreated(tmp_path):
    path = tmp_path / "gone.log"
    handler = logs.file_handler(str(path), 1_000_000, 1, fmt="%(message)s")
    log = logging.getLogger("t.gone")
    log.propagate = False
    log.addHandler(handler)
    log.warning("one")
    os.unlink(path)
    log.warning("two")
    assert path.read_text() == "two\n"
    handler.close()


def test_gunicorn_logger_class_uses_the_shared_handler(tmp_path):
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("accesslog", str(tmp_path / "access.log"))
    logger = logs.gunicorn_logger_class(1000, 2)(cfg)
    assert any(isinstance(h, logs.SharedRotatingFileHandler) for h in logger.error_log.handlers)
    assert any(isinstance(h, logs.SharedRotatingFileHandler) for h in logger.access_log.handlers)
    for _ in range(100):
        logger.error("a line of about forty bytes, repeated")
    assert (tmp_path / "error.log.1").exists() and not (tmp_path / "error.log.3").exists()
