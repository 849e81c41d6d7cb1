"""trouble_shooting's gpu check: deploys installed with --device gpu:N get the environment check's gpu answer
(the snippet itself runs in a real runtime in tests/integration/test_troubleshooting_gpu.py)."""

from __future__ import annotations

import sys

from tests.paths import REPO

sys.path.insert(0, str(REPO / "trouble_shooting"))

from vp_diag import gpu  # noqa: E402
from vp_diag.core import Context, Deploy  # noqa: E402


def ctx_with(tmp_path, monkeypatch, **state):
    ctx = Context(roots=[tmp_path], deploys=[], package=REPO, diag_dir=REPO / "trouble_shooting")
    (tmp_path / "demo" / "releases" / "1.0.0").mkdir(parents=True)
    d = Deploy(root=tmp_path, name="demo", state={"release": "1.0.0", "service": "classification", "port": 1, **state})
    monkeypatch.setattr(type(d), "runtime", property(lambda self: tmp_path / "venv"))
    ctx.deploys = [d]
    return ctx


def test_a_cpu_deploy_is_not_checked(tmp_path, monkeypatch):
    ctx = ctx_with(tmp_path, monkeypatch)
    monkeypatch.setattr(gpu.venv_exec, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    assert list(gpu.checks(ctx)) == []


def test_a_gpu_deploy_gets_the_answer_and_its_fix(tmp_path, monkeypatch):
    ctx = ctx_with(tmp_path, monkeypatch, device="gpu:1")
    calls = []

    def answer(python, package, code, args, timeout):
        calls.append((python, package, args))
        return {"ok": False, "detail": "device gpu:1: no NVIDIA kernel module loaded", "fix": "Install the driver"}, ""

    monkeypatch.setattr(gpu.venv_exec, "run", answer)
    [r] = gpu.checks(ctx)
    assert r.status == "FAIL" and r.detail == "device gpu:1: no NVIDIA kernel module loaded"
    assert r.fix == ["Install the driver", "nvidia-smi -L"]
    assert calls == [
        (tmp_path / "venv" / "bin" / "python", tmp_path / "demo" / "releases" / "1.0.0" / "package", ["gpu:1"])
    ]
    monkeypatch.setattr(gpu.venv_exec, "run", lambda *a, **k: ({"ok": True, "detail": "device gpu:1 = GPU 1: L4"}, ""))
    [r] = gpu.checks(ctx)
    assert r.status == "PASS" and r.detail == "device gpu:1 = GPU 1: L4"
    monkeypatch.setattr(gpu.venv_exec, "run", lambda *a, **k: (None, "exited with status 1: boom"))
    [r] = gpu.checks(ctx)
    assert r.status == "FAIL" and r.detail == "cannot check gpu:1: exited with status 1: boom"
