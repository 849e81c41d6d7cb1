"""A deploy installed with ``--device gpu:N``: NVIDIA driver, its CUDA version, GPU N, the runtime's CUDA support.

The same answer as install's environment check (installer/gpucheck.py, run from the release's own
package in the deploy's runtime venv, so a driver removed or a GPU gone since the install shows up
here); CPU deploys are not checked. docs/gpu.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import venv_exec
from .core import FAIL, PASS, Context, Deploy, Result, deploy_group

GROUP = "gpu"
ORDER = 93  # before backends: a missing driver explains a GPU model that does not load
TIMEOUT = 60.0  # nvidia-smi -L answers in seconds even on a busy machine

CODE = r"""
import importlib.metadata as md
from visionpack.installer import gpucheck
try:
    md.version("onnxruntime-gpu")
    cuda_runtime = True
except md.PackageNotFoundError:
    cuda_runtime = False
c = gpucheck.check_gpu(sys.argv[2], gpucheck.read_facts(), cuda_runtime)
print(json.dumps({"ok": c.ok, "detail": c.detail, "fix": c.fix}))
"""


def verdict(d: Deploy, device: str, res: Any, err: str) -> Result:
    g, kw = deploy_group(d), dict(deploy=d.name, root=str(d.root))
    if not isinstance(res, dict):
        return Result(g, "gpu", FAIL, f"cannot check {device}: {err}", ["nvidia-smi -L"], **kw)
    if res.get("ok"):
        return Result(g, "gpu", PASS, str(res.get("detail")), [], **kw)
    return Result(g, "gpu", FAIL, str(res.get("detail")), [str(res.get("fix")), "nvidia-smi -L"], **kw)


def checks(ctx: Context) -> Iterable[Result]:
    for d in ctx.deploys:
        device = str((d.state or {}).get("device") or "cpu")
        if device == "cpu" or ctx.deploy_fact(d, "broken") or d.runtime is None or d.release is None:
            continue
        res, err = venv_exec.run(d.runtime / "bin" / "python", d.release / "package", CODE, [device], TIMEOUT)
        yield verdict(d, device, res, err)
