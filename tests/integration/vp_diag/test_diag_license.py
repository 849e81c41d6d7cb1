"""vp_diag's fingerprint module (the package's, loaded by path) under 'python3 -I -S': standard
library only, and the same hashes as this process."""

from __future__ import annotations

import json
import subprocess

from tests.paths import REPO
from tests.unit.vp_diag.test_license import PKG, machine  # noqa: F401 (fixture)


def test_fingerprint_module_is_stdlib_only_and_agrees(machine):
    """Loaded by path under 'python3 -I -S' (no site-packages) it gives this process's hashes."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from vp_diag import shared; "
        "m = shared.load('licensing.fingerprint', [__import__('pathlib').Path(sys.argv[2])]); "
        "print(json.dumps(dict(m.collect().components)))"
    )
    out = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", code, str(REPO / "trouble_shooting"), str(PKG)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == dict(machine.components)
