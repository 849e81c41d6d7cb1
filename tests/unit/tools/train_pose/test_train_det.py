"""Detector training pieces: the IoU-aware heatmap target and training on several scene caches."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.paths import REPO

sys.path.insert(0, str(REPO))

from tools.train_pose import data, train_det, train_torch  # noqa: E402


def _targets():
    boxes = np.float32([[40, 60, 120, 250], [180, 30, 300, 200]])
    hm_t, reg_t, wt = train_det.det_targets(boxes, 320)
    return (torch.from_numpy(v[None]) for v in (hm_t, reg_t, wt))


def _hm_grad(hm_logit, box, hm_t, reg_t, wt, iou_aware):
    hm_logit = hm_logit.clone().requires_grad_(True)
    _, l_hm, _ = train_torch.det_loss(torch, hm_logit, box, hm_t, reg_t, wt, iou_aware=iou_aware)
    l_hm.backward()
    return hm_logit.grad


def test_iou_aware_changes_nothing_when_every_box_is_exact():
    hm_t, reg_t, wt = _targets()
    box = torch.log(reg_t)  # every positive cell predicts its box exactly: IoU 1
    logit = torch.randn_like(hm_t)
    plain = train_torch.det_loss(torch, logit, box, hm_t, reg_t, wt)
    aware = train_torch.det_loss(torch, logit, box, hm_t, reg_t, wt, iou_aware=True)
    assert torch.allclose(plain[0], aware[0], atol=1e-5)


def test_iou_aware_target_is_gaussian_times_box_iou():
    hm_t, reg_t, wt = _targets()
    box = torch.log(reg_t * 1.5)  # every box 1.5x too large on each side: IoU 1 / 2.25
    target = torch.where(wt > 0, hm_t / 2.25, hm_t)
    logit = torch.logit(target.clamp(1e-6, 1 - 1e-6))
    # the loss is at its minimum exactly at the IoU-scaled target, not at the plain Gaussian
    assert _hm_grad(logit, box, hm_t, reg_t, wt, True).abs().max() < 1e-6
    assert _hm_grad(logit, box, hm_t, reg_t, wt, False).abs().max() > 1e-3
    # cells that regress no box keep the plain Gaussian target
    assert bool(((wt == 0) & (hm_t > 0.01)).any())


def _shard(path: Path, n_scenes: int, per_scene: int, tag: float) -> None:
    np.savez(
        path,
        det_imgs=np.full((n_scenes, 8, 8, 3), tag, np.uint8),
        det_boxes=np.full((n_scenes * per_scene, 4), tag, np.float32),
        det_count=np.full(n_scenes, per_scene, np.int32),
        crops=np.zeros((1, 4, 4, 3), np.uint8),
        crop_kpts=np.zeros((1, 17, 3), np.float32),
    )


def test_several_caches_load_as_one(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    _shard(a / "shard_0000.npz", 2, 1, 1)
    _shard(b / "shard_0000.npz", 3, 2, 2)
    d = data.load([str(a), str(b)])
    assert len(d["det_imgs"]) == 5 and list(d["det_offsets"]) == [0, 1, 2, 4, 6, 8]
    scene3 = d["det_boxes"][d["det_offsets"][3] : d["det_offsets"][4]]
    assert scene3.shape == (2, 4) and (scene3 == 2).all() and d["det_imgs"][3].max() == 2
    assert len(data.load(str(a))["det_imgs"]) == 2


def test_no_shards_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no shards"):
        data.load([str(tmp_path)])
