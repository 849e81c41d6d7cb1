"""Shared test vocabulary: the repo paths, a tiny classification bundle, fake engines, clients."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.paths import PACKAGE, REPO

# The code under test is imported from the tree, never installed. Test helpers need no path:
# tests/ is a package, imported from the repository root (``from tests.unit.fakes import ...``).
if str(PACKAGE) not in sys.path:
    sys.path.insert(0, str(PACKAGE))

# Fixtures shared by folders of both tiers (a plugin: a conftest's fixtures reach only its folder).
pytest_plugins = ["tests.licensing_keys", "tests.postgres_cluster"]


_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_sessionfinish(session, exitstatus):
    own = session.config.stash.get(_OWN_BASETEMP, None)
    if own and exitstatus == 0:
        shutil.rmtree(own, ignore_errors=True)


def pytest_configure(config):
    """Temp dirs under a parent every user may enter: a root installer runs the services as the
    user ``visionpack`` (installer/serviceuser.py), which must reach the install roots the tests
    make. pytest's own ``/tmp/pytest-of-<user>`` is forced back to 0700 by every pytest that
    starts on the machine, which would cut a running service off its files mid-test."""
    if config.option.basetemp:
        return
    # Short on purpose: pip falls back to a '#!/bin/sh' exec trick when a venv path makes the
    # shebang longer than 127 bytes, and runtime builds live a few levels below a test's tmp_path.
    parent = Path(tempfile.gettempdir()) / f"vp-{os.geteuid()}"
    try:
        parent.mkdir(mode=0o755, exist_ok=True)
        st = os.lstat(parent)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return  # someone else's (or a planted link): keep pytest's default, the installer says why
        os.chmod(parent, 0o755)
        # A session's installs and runtime venvs take gigabytes: sessions idle for an hour are
        # gone (a concurrent one touches its top directory with every test), and a session that
        # passed removes itself at the end (pytest_sessionfinish); a failed one stays for an hour
        # to be read.
        for old in parent.iterdir():
            if time.time() - os.lstat(old).st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        config.option.basetemp = tempfile.mkdtemp(prefix="p", dir=parent)
        config.stash[_OWN_BASETEMP] = config.option.basetemp
    except OSError:
        return


def pytest_collection_modifyitems(config, items):
    # The tier is the directory: tests/unit, tests/integration, tests/e2e (LitServe's convention).
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in ("unit", "integration", "e2e"):
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _tmp_path_traversable(request):
    """A test's tmp_path (0700 by pytest) and the session base are entered by the service user
    when the test installs into them (see pytest_configure): o+x, never o+r or o+w."""
    if "tmp_path" in request.fixturenames:
        path = request.getfixturevalue("tmp_path")
        base = request.config._tmp_path_factory.getbasetemp()
        for d in (path, *path.parents):
            if d == base.parent or base not in (d, *d.parents):
                break
            mode = stat.S_IMODE(d.stat().st_mode)
            if not mode & 0o001:
                d.chmod(mode | 0o001)


@pytest.fixture
def repo() -> Path:
    return REPO
