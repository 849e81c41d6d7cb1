"""torch-trained demo pose weights must land unchanged in the Paddle networks that get exported.

tools/train_pose trains in PyTorch (torch_models.py) and exports the Paddle twins (models.py);
transfer.py maps parameters by name. A drift between the two module trees, or a BatchNorm
statistic not carried over, would export a different network than the one evaluated.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch  # a training-time tool only, installed from tests/requirements.txt

from tests.paths import REPO

sys.path.insert(0, str(REPO))

from tools.train_pose import torch_models, transfer  # noqa: E402


@pytest.mark.parametrize("model", ["det", "kpt"])
def test_transfer_keeps_outputs(model, tmp_path):
    torch.manual_seed(0)
    net = torch_models.PersonDetector() if model == "det" else torch_models.TinyPoseNet()
    shape = (2, 3, 192, 192) if model == "det" else (2, 3, 128, 96)
    net.train()
    with torch.no_grad():  # non-trivial BatchNorm running statistics and weights
        for _ in range(2):
            net(torch.randn(*shape) * 2 + 0.5)
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save({"net": net.state_dict(), "opt": {}}, tmp_path / "last.pt")
    (tmp_path / "state.json").write_text(json.dumps({"step": 1}))
    diff = transfer.transfer(model, tmp_path)
    assert diff <= transfer.PARITY_TOL
    assert (tmp_path / "last.pdparams").is_file()


def test_batchnorm_statistics_are_renamed():
    net = torch_models.TinyPoseNet()
    names = transfer.torch_to_paddle_names(net.state_dict())
    assert not any("running_" in k or "num_batches" in k for k in names)
    assert "stem.0.bn._mean" in names and "stem.0.bn._variance" in names
    assert all(isinstance(v, np.ndarray) for v in names.values())
