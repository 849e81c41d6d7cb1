"""trouble_shooting's gpu check for real: its snippet runs in a runtime venv (the dev venv here, which has the
CPU onnxruntime) against the release's package, and answers what this machine has."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.paths import PACKAGE, REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import gpu  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402

VENV = Path(sys.executable).parent.parent


def test_the_snippet_answers_for_this_machine(tmp_path, monkeypatch):
    release = tmp_path / "demo" / "releases" / "1.0.0"
    release.mkdir(parents=True)
    (release / "package").symlink_to(PACKAGE)
    d = Deploy(root=tmp_path, name="demo", state={"release": "1.0.0", "service": "classification", "device": "gpu:0"})
    monkeypatch.setattr(type(d), "runtime", property(lambda self: VENV))
    ctx = Context(roots=[tmp_path], deploys=[d], package=REPO, diag_dir=REPO / "trouble_shooting")
    [r] = gpu.checks(ctx)
    # No GPU runtime in the dev venv (the CPU onnxruntime): whatever the machine, gpu:0 cannot be served.
    assert r.status == "FAIL", r.detail
    if Path("/proc/driver/nvidia/version").exists():
        assert "device gpu:0" in r.detail
    else:
        assert r.detail.startswith("device gpu:0: no NVIDIA kernel module loaded"), r.detail
        assert "Install the NVIDIA driver" in r.fix[0] and r.fix[-1] == "nvidia-smi -L"
