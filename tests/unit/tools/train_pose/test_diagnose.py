"""Flip test for the demo pose net: the flipped-back heatmaps must line up with the plain ones.

Training mirrors a joint at crop x to 95 - x and heatmap cell j sits at crop x = 4 j, so a
flipped-back heatmap peaks 0.75 cell left of the plain one; tools/train_pose/diagnose.py
re-aligns by 0.75 and models.PoseExport(flip=True) bakes the same merge into the graph.
"""

from __future__ import annotations

import sys

import numpy as np
import paddle

from tests.paths import REPO

sys.path.insert(0, str(REPO))

from tools.train_pose import diagnose, models, scenes, topdown  # noqa: E402


def _peak_x(hm: np.ndarray) -> float:
    """Sub-cell x of a heatmap's peak: parabola through the log of the argmax row (exact for a Gaussian)."""
    y, x = np.unravel_index(hm.argmax(), hm.shape)
    lm, l0, lp = np.log(hm[y, x - 1 : x + 2])
    return float(x + 0.5 * (lm - lp) / (lm - 2 * l0 + lp))


def test_flip_index_matches_scene_pairs():
    idx = list(range(17))
    for a, b in scenes.FLIP_PAIRS:
        idx[a], idx[b] = b, a
    assert models.FLIP_INDEX == idx == list(diagnose.FLIP_INDEX)


def test_flip_shift_0_75_realigns_training_convention():
    rng = np.random.default_rng(0)
    kp = np.stack([rng.uniform(20, 76, 17), rng.uniform(20, 108, 17)], 1).astype(np.float32)
    w = np.ones(17, np.float32)
    plain = topdown.gaussian_targets(kp, w)[None]
    # what the net is trained to output for the W-mirrored crop (train_kpt.batch_from)
    mk = kp[diagnose.FLIP_INDEX].copy()
    mk[:, 0] = (topdown.INPUT_W - 1) - mk[:, 0]
    mirrored = topdown.gaussian_targets(mk, w)[None]
    for shift, expect in ((0.75, 0.0), (1.0, 0.25), (0.0, -0.75)):
        merged = diagnose.flip_merge(np.zeros_like(plain), mirrored, shift) * 2.0  # the flipped half only
        err = [_peak_x(merged[0, j]) - kp[j, 0] / 4.0 for j in range(17)]
        assert np.allclose(err, expect, atol=0.03), (shift, err)


def test_flip_in_graph_equals_numpy_merge():
    paddle.seed(0)
    net = models.TinyPoseNet()
    with paddle.no_grad():
        for p in net.parameters():  # non-trivial, asymmetric outputs
            p.set_value(p + paddle.randn(p.shape) * 0.05)
    net.eval()
    x = np.random.default_rng(1).normal(size=(3, 3, 128, 96)).astype(np.float32)
    with paddle.no_grad():
        plain = net(paddle.to_tensor(x)).numpy()
        mirrored = net(paddle.to_tensor(np.ascontiguousarray(x[:, :, :, ::-1]))).numpy()
        hm, am = models.PoseExport(net, flip=True)(paddle.to_tensor(x))
        hm0, _ = models.PoseExport(net)(paddle.to_tensor(x))
    ref = diagnose.flip_merge(plain, mirrored, 0.75)
    assert np.abs(hm.numpy() - ref).max() < 1e-5
    assert np.array_equal(am.numpy(), hm.numpy().reshape(3, 17, -1).argmax(-1))
    assert np.abs(hm0.numpy() - plain).max() < 1e-6


def _perturbed_detector() -> models.PersonDetector:
    paddle.seed(0)
    net = models.PersonDetector()
    with paddle.no_grad():
        for p in net.parameters():
            p.set_value(p + paddle.randn(p.shape) * 0.05)
    net.eval()
    return net


def test_detector_flip_in_graph_averages_the_mirrored_maps():
    net = _perturbed_detector()
    x = np.random.default_rng(2).normal(size=(2, 3, 320, 320)).astype(np.float32)
    with paddle.no_grad():
        hm, box = net(paddle.to_tensor(x))
        hmf, boxf = net(paddle.to_tensor(np.ascontiguousarray(x[:, :, :, ::-1])))
        got_hm, got_dist = models.DetectorExport(net, flip=True).maps(paddle.to_tensor(x))
    dist = np.exp(np.clip(box.numpy(), -4, 5))
    distf = np.exp(np.clip(boxf.numpy(), -4, 5))[:, [2, 1, 0, 3], :, ::-1]  # mirrored back: left <-> right
    assert np.abs(got_hm.numpy() - (hm.numpy() + hmf.numpy()[:, :, :, ::-1]) / 2).max() < 1e-5
    assert np.abs(got_dist.numpy() - (dist + distf) / 2).max() < 1e-4


def test_detector_flip_in_graph_is_mirror_equivariant():
    """With the flip merged in, a mirrored image gives exactly the mirrored detections."""
    img, _ = scenes.generate_scene(7, size=(320, 320))
    x = topdown.normalize(img[None])
    scale = paddle.to_tensor(np.ones((1, 2), np.float32))
    exp = models.DetectorExport(_perturbed_detector(), score_threshold=0.0, flip=True)
    with paddle.no_grad():
        out, n = exp(paddle.to_tensor(x), scale)
        outm, nm = exp(paddle.to_tensor(np.ascontiguousarray(x[:, :, :, ::-1])), scale)
    a, b = out.numpy(), outm.numpy()
    assert int(n.numpy()[0]) == int(nm.numpy()[0]) > 0
    mirrored = b.copy()
    mirrored[:, [2, 4]] = 320 - b[:, [4, 2]]
    key = lambda r: tuple(np.round(r[1:], 2))  # noqa: E731
    assert np.allclose(sorted(map(key, a)), sorted(map(key, mirrored)), atol=0.02)
