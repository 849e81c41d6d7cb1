"""The real demo-classify deploy (Paddle, EfficientNet-Lite0) upgraded and rolled back under load.

Runs benchmarks/bench_upgrade.py against the session's shared runtime: a scratch root with a
trial license, ``install``, a second package tree (this one with VERSION bumped: an update
package), a load process on loopback (4 client threads, a new connection per request, the
cat photo), ``upgrade --package`` then ``rollback``. Not one request may fail, and each switch
must have been proved with a real classification of the sample image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from test_install_classify import demo_models  # noqa: E402,F401
from test_installer_fixtures import REPO, shared_runtime, source_tree, wheelhouse  # noqa: E402,F401


def test_upgrade_and_rollback_of_demo_classify_under_load_fail_nothing(shared_runtime, demo_models):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_upgrade.py"),
            "--runtime-from",
            str(shared_runtime),
            "--settle",
            "3",
            "--max-seconds",
            "600",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["failed_total"] == 0, doc
    phases = doc["phases"]
    assert phases["upgrade"]["requests"] > 20 and phases["rollback"]["requests"] > 20, phases
    assert (doc["final_release"], doc["final_state"]) == ((REPO / "package" / "VERSION").read_text().strip(), "running")
    for proof in (doc["upgrade_proof"], doc["rollback_proof"]):
        assert proof and "cat.jpg -> " in proof and "cat" in proof.split("->")[1], doc
