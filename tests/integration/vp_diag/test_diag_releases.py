"""vp_diag's masters check against real processes: a second master of another release fails, and
the survivor is judged against state.json's release."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO
from tests.unit.vp_diag.test_releases import deploy  # noqa: F401 (fixture)

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import procfs, releases  # noqa: E402


def test_a_second_master_of_another_release_fails(deploy):
    ctx, d, _ = deploy
    # The interpreter itself, not a "python3" found on PATH: a pyenv shim is a bash script whose
    # forked helpers carry the same command line, and killing the shim left one of them behind
    # as a second "master" (CI saw it). Popen returns after exec, so /proc shows the script.
    cmd = [sys.executable, "-c", "import time; time.sleep(60)", "gunicorn", "-c"]
    procs = [subprocess.Popen(cmd + [f"{d.dir}/releases/{v}/start/gunicorn_conf.py"]) for v in ("2.0.0", "1.0.0")]
    try:
        r = releases.masters_check(ctx, d, procfs.all_procs())
        assert r.status == "FAIL" and "2 masters serve this deploy" in r.detail
        assert r.fix == [f"kill {procs[1].pid}  # the ones not running 2.0.0"]
        procs[1].kill()
        procs[1].wait()
        # One snapshot for both verdicts: they differ only in state.json, not in what runs
        # (a CI run once saw the survivor gone from a second /proc read).
        snapshot = procfs.all_procs()
        r = releases.masters_check(ctx, d, snapshot)
        assert r.status == "PASS" and r.detail == "one master, serving release 2.0.0"
        d.state["release"] = "1.0.0"
        r = releases.masters_check(ctx, d, snapshot)
        assert r.status == "FAIL" and r.detail == f"pid {procs[0].pid} serves release 2.0.0 but state.json names 1.0.0"
    finally:
        for p in procs:
            p.kill()
            p.wait()
