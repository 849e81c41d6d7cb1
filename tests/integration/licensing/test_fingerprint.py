"""The fingerprint read by a separate process whose environment is hostile (a fake nvidia-smi first
on PATH, another HOME and locale) is this machine's."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.paths import REPO


def test_environment_cannot_redirect(machine, tmp_path):
    """A hostile environment (PATH with a fake nvidia-smi, odd HOME/locale) changes nothing."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho GPU-11111111-2222-3333-4444-555555555555\n")
    fake.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LC_ALL": "C",
        "PYTHONPATH": str(REPO / "package"),
    }
    code = (
        "import json; from visionpack.licensing import fingerprint as f; fp = f.collect();"
        "print(json.dumps([fp.components, list(fp.gpus)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True, timeout=60)
    comps, gpus = json.loads(out.stdout)
    assert comps == dict(machine.components) and gpus == list(machine.gpus)
