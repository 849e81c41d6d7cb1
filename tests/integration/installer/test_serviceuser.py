"""serviceuser.py running a real command for useradd: one that fails is an environment error that
says its exit status and what it wrote."""

from __future__ import annotations

import sys

import pytest

from visionpack.errors import EnvironmentCheckFailed
from visionpack.installer import serviceuser


def test_a_failing_useradd_is_an_environment_error():
    with pytest.raises(EnvironmentCheckFailed) as exc:
        serviceuser._run([sys.executable, "-c", "import sys; sys.stderr.write('uid in use'); sys.exit(4)"])
    assert "exited 4" in exc.value.detail and "uid in use" in exc.value.detail
