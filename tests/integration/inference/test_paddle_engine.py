"""glibc malloc tuning for Paddle's per-run buffers: applied once per process, switchable off.

Paddle's wheels are manylinux (glibc), so mallopt is always there where the engine runs.
Run in child interpreters: mallopt settings and the applied-once flag are process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.paths import PACKAGE

PROBE = (
    "from visionpack import config; from visionpack.inference.paddle_engine import tune_malloc; "
    "on = config.load().malloc_tuning; print(tune_malloc(on), tune_malloc(on))"
)


def probe(**env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "VISIONPACK_MALLOC_TUNING"}
    full.update(PYTHONPATH=str(PACKAGE), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_tuning_applies_once_and_reports_it():
    assert probe() == "True True"


def test_tuning_can_be_switched_off_by_environment():
    assert probe(VISIONPACK_MALLOC_TUNING="0") == "False False"
