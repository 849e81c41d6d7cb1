"""Copy a torch-trained checkpoint (train_torch.py) into the Paddle network and prove they agree.

    .venv/bin/python -m tools.train_pose.transfer --model kpt --ckpt /tmp/vp_pose/tkpt

Writes ``<ckpt>/last.pdparams`` (what export.py loads) from ``<ckpt>/last.pt``. The torch mirror
(torch_models.py) has the same module tree as models.py, so parameters map by name; only
BatchNorm's running statistics are renamed (running_mean/var -> _mean/_variance). Conv kernels
are OIHW in both frameworks, so no transposes are needed (there are no Linear layers). The copy
is accepted only if both networks, in inference mode, give the same outputs on a random batch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PARITY_TOL = 1e-3  # absolute, on heatmaps / logits of order 1 (float32 summation-order noise is ~1e-5)


def torch_to_paddle_names(state: dict) -> dict[str, np.ndarray]:
    out = {}
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        k = k.replace("running_mean", "_mean").replace("running_var", "_variance")
        out[k] = v.detach().cpu().numpy()
    return out


def transfer(model: str, ckpt: Path) -> float:
    """Write last.pdparams; return the max abs output difference (raises if above PARITY_TOL)."""
    import paddle
    import torch

    from tools.train_pose import models, torch_models
    from tools.train_pose.common import DET_SIZE

    tnet = torch_models.PersonDetector() if model == "det" else torch_models.TinyPoseNet()
    tnet.load_state_dict(torch.load(ckpt / "last.pt", weights_only=True)["net"])
    tnet.eval()
    pnet = models.PersonDetector() if model == "det" else models.TinyPoseNet()
    weights = torch_to_paddle_names(tnet.state_dict())
    own = pnet.state_dict()
    if set(weights) != set(own):
        raise SystemExit(f"parameter names differ: {sorted(set(weights) ^ set(own))[:10]}")
    for k, v in weights.items():
        if list(own[k].shape) != list(v.shape):
            raise SystemExit(f"{k}: paddle {own[k].shape} vs torch {v.shape}")
    pnet.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    pnet.eval()
    shape = (4, 3, DET_SIZE, DET_SIZE) if model == "det" else (4, 3, 128, 96)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    with torch.no_grad():
        t_out = tnet(torch.from_numpy(x))
    p_out = pnet(paddle.to_tensor(x))
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    p_out = p_out if isinstance(p_out, tuple) else (p_out,)
    diff = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(t_out, p_out))
    if diff > PARITY_TOL:
        raise SystemExit(f"torch/paddle outputs differ by {diff} > {PARITY_TOL}")
    paddle.save(pnet.state_dict(), str(ckpt / "last.pdparams"))
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["det", "kpt"], required=True)
    ap.add_argument("--ckpt", required=True)
    a = ap.parse_args()
    from tools.train_pose.common import limit_threads

    limit_threads(1)
    print(f"{a.ckpt}: max abs torch/paddle output difference {transfer(a.model, Path(a.ckpt)):.2e}")


if __name__ == "__main__":
    main()
