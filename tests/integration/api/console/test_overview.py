"""The overview's running workers against real processes: a child of the master is listed, a pid
that does not exist gives none."""

from __future__ import annotations

from visionpack.api.console import overview


def test_running_workers_are_the_masters_children():
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in overview.running_workers(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert overview.running_workers(2**22 + 12345) is None  # no such process
