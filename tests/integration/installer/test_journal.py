"""installer/journal.py with a real process: a named checkpoint kills the installer there (the crash
tests' kill point), any other leaves it running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from visionpack.installer import journal, settings


def test_checkpoint_is_inert_unless_named(monkeypatch):
    monkeypatch.delenv(settings.KILL_ENV, raising=False)
    journal.checkpoint("upgrade", "prove")
    monkeypatch.setenv(settings.KILL_ENV, "upgrade:other")
    journal.checkpoint("upgrade", "prove")
    code = (
        "import os; os.environ['VISIONPACK_TEST_KILL_AT'] = 'upgrade:prove';"
        "from visionpack.installer import journal; journal.checkpoint('upgrade', 'prove'); print('alive')"
    )
    package = str(Path(journal.__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": package}
    )
    assert proc.returncode == -9 and "alive" not in proc.stdout
