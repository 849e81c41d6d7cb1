"""The two small demo networks (paddle): a CenterNet-style person detector and a tiny top-down pose net.

PersonDetector: DET_SIZE (320) square input, a depthwise-separable backbone down to stride 32, an FPN-style
top-down path back to stride 8 and two heads there: a person-centre heatmap and the box
(log distances from each cell centre to the four box edges, FCOS-style). For export, ``DetectorExport`` decodes
in-graph (3x3 max-pool peaks, top-k, boxes divided by ``scale_factor``) and runs
``multiclass_nms3`` so the graph returns PaddleX's ``[M,6]`` rows plus per-image counts;
``flip=True`` first averages the maps with those of the mirrored image (the flip test, in-graph).

TinyPoseNet: 128x96 input, stride-4 heatmaps [N,17,32,24] from a three-level U-shaped
net (widths: common.KPT_CHANNELS); ``PoseExport`` adds PP-TinyPose's second output (argmax [N,17] int64)
and, with ``flip=True``, the flip test.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from tools.train_pose.common import DET_CHANNELS, DET_WIDTH, KPT_CHANNELS
from tools.train_pose.scenes import FLIP_INDEX

DET_STRIDE = 8
NUM_JOINTS = 17


class ConvBN(nn.Layer):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=s, padding=k // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class DWSep(nn.Layer):
    """Depthwise 3x3 + pointwise 1x1; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, s: int = 1):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, s, groups=cin, act=False)
        self.pw = ConvBN(cin, cout, 1)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return x + y if self.res else y


class Residual(nn.Layer):
    """Two regular 3x3 convolutions with an identity shortcut."""

    def __init__(self, c: int):
        super().__init__()
        self.a = ConvBN(c, c, 3)
        self.b = ConvBN(c, c, 3, act=False)

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


def up2(x):
    """Nearest-neighbour 2x upsampling from expand/reshape.

    Same numbers as nearest interpolation with scale 2, but the nearest_interp op exports a
    float-array ``scale`` attribute that Paddle Inference's oneDNN executor cannot convert
    (and PaddleX runs PP-YOLOE-S_human with oneDNN by default).
    """
    n, c, h, w = x.shape
    x = paddle.expand(x.reshape([-1, c, h, 1, w, 1]), [-1, c, h, 2, w, 2])
    return x.reshape([-1, c, h * 2, w * 2])


class SpaceToDepth(nn.Layer):
    """[N,C,H,W] -> [N,C*b*b,H/b,W/b] with reshape/transpose only (exports everywhere)."""

    def __init__(self, block: int):
        super().__init__()
        self.b = block

    def forward(self, x):
        n, c, h, w = x.shape
        b = self.b
        x = paddle.reshape(x, [-1, c, h // b, b, w // b, b])
        x = paddle.transpose(x, [0, 1, 3, 5, 2, 4])
        return paddle.reshape(x, [-1, c * b * b, h // b, w // b])


class PersonDetector(nn.Layer):
    def __init__(self, width: int = DET_WIDTH, ch: tuple[int, int, int, int] = DET_CHANNELS):
        super().__init__()
        c0, c1, c2, c3 = ch
        # space-to-depth stem: nothing runs at full resolution, which dominated CPU training time
        self.stem = nn.Sequential(SpaceToDepth(4), ConvBN(48, c0, 1), ConvBN(c0, c0, 3))  # /4
        self.c3 = nn.Sequential(DWSep(c0, c1, 2), DWSep(c1, c1), DWSep(c1, c1))  # /8
        self.c4 = nn.Sequential(DWSep(c1, c2, 2), DWSep(c2, c2), DWSep(c2, c2))  # /16
        self.c5 = nn.Sequential(DWSep(c2, c3, 2), DWSep(c3, c3), DWSep(c3, c3))  # /32
        self.lat5, self.lat4, self.lat3 = ConvBN(c3, width, 1), ConvBN(c2, width, 1), ConvBN(c1, width, 1)
        self.fuse4, self.fuse3 = DWSep(width, width), DWSep(width, width)
        self.hm_head = nn.Sequential(DWSep(width, width), DWSep(width, width))
        self.box_head = nn.Sequential(DWSep(width, width), DWSep(width, width))
        # focal-loss prior: start every cell at p ~ 0.1 so early training is not swamped by negatives
        self.hm_out = nn.Conv2D(width, 1, 1, bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(-2.19)))
        # box = log of the distances (in cells) from the cell centre to the left/top/right/bottom edges
        self.box_out = nn.Conv2D(
            width,
            4,
            1,
            weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0, 0.01)),
            bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(1.0)),
        )

    def forward(self, x):
        x = self.stem(x)
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p4 = self.fuse4(self.lat4(c4) + up2(self.lat5(c5)))
        p3 = self.fuse3(self.lat3(c3) + up2(p4))
        hm = self.hm_out(self.hm_head(p3))  # logits [N,1,H/8,W/8]
        box = self.box_out(self.box_head(p3))  # [N,4,H/8,W/8]: log l, t, r, b (cells)
        return hm, box


class DetectorExport(nn.Layer):
    """Inference graph: image [N,3,DET_SIZE,DET_SIZE] + scale_factor [N,2] -> (boxes [M,6], counts [N] int32)."""

    def __init__(
        self,
        net: PersonDetector,
        top_k: int = 100,
        score_threshold: float = 0.01,
        nms_threshold: float = 0.6,
        keep_top_k: int = 100,
        calib: tuple[float, float] = (1.0, 0.0),
        flip: bool = False,
    ):
        super().__init__()
        self.net = net
        self.flip = flip
        # affine re-scaling of the centre logit (monotonic: ranking and AP unchanged) so that
        # PaddleX's default draw_threshold 0.5 lands on a chosen operating point (export.py)
        self.calib_a, self.calib_b = float(calib[0]), float(calib[1])
        self.top_k, self.score_threshold = top_k, score_threshold
        self.nms_threshold, self.keep_top_k = nms_threshold, keep_top_k

    def maps(self, image):
        """Centre logits [N,1,h,w] and ltrb distances in cells [N,4,h,w].

        ``flip``: the batch runs together with its W-mirrored copy, whose maps are mirrored back
        (left and right distances exchanged) and averaged with the plain ones. DET_SIZE is a
        multiple of the stride, so mirrored cell j is exactly cell w-1-j: no re-alignment.
        """
        if not self.flip:
            hm, box = self.net(image)
            return hm, paddle.exp(paddle.clip(box, -4.0, 5.0))
        hm2, box2 = self.net(paddle.concat([image, paddle.flip(image, [3])], axis=0))
        hm, hmf = paddle.split(hm2, 2, axis=0)
        box, boxf = paddle.split(paddle.exp(paddle.clip(box2, -4.0, 5.0)), 2, axis=0)
        boxf = paddle.gather(paddle.flip(boxf, [3]), paddle.to_tensor([2, 1, 0, 3], dtype="int64"), axis=1)
        return (hm + paddle.flip(hmf, [3])) * 0.5, (box + boxf) * 0.5

    def forward(self, image, scale_factor):
        hm, dist_map = self.maps(image)
        heat = F.sigmoid(hm * self.calib_a + self.calib_b)
        peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
        heat = heat * paddle.cast(peaks == heat, heat.dtype)
        _fh, fw = paddle.shape(heat)[2], paddle.shape(heat)[3]
        flat = paddle.flatten(heat, 1)  # [N, H*W]
        scores, idx = paddle.topk(flat, self.top_k, axis=1)  # [N, K]
        ys = paddle.cast(idx // fw, "float32")
        xs = paddle.cast(idx % fw, "float32")
        boxf = paddle.flatten(dist_map, 2)  # [N, 4, H*W]
        sel = paddle.take_along_axis(boxf, paddle.tile(idx.unsqueeze(1), [1, 4, 1]), axis=2)  # [N,4,K]
        dist = sel * DET_STRIDE  # [N,4,K] l, t, r, b in pixels
        cx = (xs + 0.5) * DET_STRIDE
        cy = (ys + 0.5) * DET_STRIDE
        # scale_factor is [h_scale, w_scale] = resized / original (PaddleX ToBatch)
        sy = scale_factor[:, 0:1]
        sx = scale_factor[:, 1:2]
        boxes = paddle.stack(
            [(cx - dist[:, 0]) / sx, (cy - dist[:, 1]) / sy, (cx + dist[:, 2]) / sx, (cy + dist[:, 3]) / sy], -1
        )
        out, _, counts = paddle._C_ops.multiclass_nms3(
            boxes,
            scores.unsqueeze(1),
            None,
            self.score_threshold,
            self.top_k,
            self.keep_top_k,
            self.nms_threshold,
            True,
            1.0,
            -1,
            True,
        )
        return out, counts


class TinyPoseNet(nn.Layer):
    def __init__(self, c1: int = KPT_CHANNELS[0], c2: int = KPT_CHANNELS[1], c3: int = KPT_CHANNELS[2]):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, c1, 3, 2))  # 32x24
        self.l1 = nn.Sequential(Residual(c1), Residual(c1))
        self.down2 = ConvBN(c1, c2, 3, 2)  # 16x12
        self.l2 = nn.Sequential(Residual(c2), DWSep(c2, c2), DWSep(c2, c2))
        self.down3 = DWSep(c2, c3, 2)  # 8x6
        self.l3 = nn.Sequential(DWSep(c3, c3), DWSep(c3, c3), DWSep(c3, c3), DWSep(c3, c3))
        self.up3 = ConvBN(c3, c2, 1)
        self.f2 = nn.Sequential(DWSep(c2, c2), DWSep(c2, c2))
        self.up2 = ConvBN(c2, c1, 1)
        self.f1 = nn.Sequential(Residual(c1))
        # heatmaps start near zero so the first steps do not chase a random offset
        self.out = nn.Conv2D(
            c1, NUM_JOINTS, 1, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Normal(0, 0.001))
        )

    def forward(self, x):
        x1 = self.l1(self.stem(x))
        x2 = self.l2(self.down2(x1))
        x3 = self.l3(self.down3(x2))
        y2 = self.f2(x2 + up2(self.up3(x3)))
        y1 = self.f1(x1 + up2(self.up2(y2)))
        return self.out(y1)


class PoseExport(nn.Layer):
    """Inference graph: image [N,3,128,96] -> heatmaps [N,17,32,24] and argmax [N,17] int64.

    ``flip=True`` bakes the flip test into the graph (same inputs and outputs, twice the
    compute): the batch is run together with its W-mirrored copy, whose heatmaps are flipped
    back, left/right joints exchanged, shifted right by 0.75 cell and averaged with the plain
    ones. 0.75, not PaddleX's 1 cell: training mirrors a joint at crop x to 95 - x and heatmap
    cell j sits at crop x = 4 j, so a flipped-back peak lands 0.75 cell left (diagnose.py).
    """

    def __init__(self, net: TinyPoseNet, flip: bool = False):
        super().__init__()
        self.net = net
        self.flip = flip

    def forward(self, image):
        if self.flip:
            both = self.net(paddle.concat([image, paddle.flip(image, [3])], axis=0))
            hm, hf = paddle.split(both, 2, axis=0)
            hf = paddle.gather(paddle.flip(hf, [3]), paddle.to_tensor(FLIP_INDEX, dtype="int64"), axis=1)
            left = paddle.concat([hf[:, :, :, :1] * 0.0, hf[:, :, :, :-1]], axis=3)  # cell x-1
            hm = (hm + 0.25 * hf + 0.75 * left) * 0.5
        else:
            hm = self.net(image)
        return hm, paddle.argmax(paddle.flatten(hm, 2), axis=-1)


def count_params(layer: nn.Layer) -> int:
    return int(sum(p.numel().item() for p in layer.parameters()))
