"""API and console unit fixtures: a classification and a face app on fakes (tests/unit/fakes.py,
face_fakes.py, api/console/console_fakes.py), and the logger isolation an app with a log directory
needs (the console tests and api/test_csrf.py use them)."""

from __future__ import annotations

import logging

import pytest

from tests.unit.api.console.console_fakes import cls_config
from tests.unit.face_fakes import face_config, factory
from tests.unit.fakes import fake_factory
from visionpack.api.app import create_app


@pytest.fixture
def own_logging():
    """The 'visionpack' logger as a fresh process has it, given back afterwards: an app with a
    log_dir writes its error.log there (api/app.py configures only a logger without handlers)."""
    logger = logging.getLogger("visionpack")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers.clear()
    yield
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


@pytest.fixture
def logged_app(tmp_path, own_logging):
    """The classification app writing logs/error.log (the errors page reads it)."""
    return create_app(cls_config(tmp_path, log_dir=str(tmp_path / "logs")), engine_factory=fake_factory, gate=None)


@pytest.fixture
def cls_app(tmp_path):
    return create_app(cls_config(tmp_path), engine_factory=fake_factory, gate=None)


@pytest.fixture
def client(cls_app):
    return cls_app.test_client()


@pytest.fixture
def face_client(tmp_path):
    cfg = face_config(tmp_path)
    return create_app(cfg, engine_factory=factory(), gate=None).test_client()
