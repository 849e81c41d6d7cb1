"""PyTorch mirrors of tools/train_pose/models.py, used only as a faster CPU training engine.

Why: on this 2-core CPU the same networks train several times faster per step in PyTorch than in
Paddle's dynamic graph (docs/pose-models.md, "Training"). The exported bundles are still built by
the Paddle classes in models.py: ``transfer.py`` copies the weights over (same module tree and
parameter names, so the mapping is by name) and checks that both frameworks give the same outputs.
Nothing at runtime needs torch.

Mirroring rules: every layer has the same attribute name and order as in models.py; conv weights
are OIHW in both; BatchNorm eps 1e-5 and momentum 0.1 (torch) == 0.9 (paddle); running_mean /
running_var become paddle's ``_mean`` / ``_variance``.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from tools.train_pose.common import DET_CHANNELS, DET_WIDTH, KPT_CHANNELS

NUM_JOINTS = 17


class ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class DWSep(nn.Module):
    def __init__(self, cin: int, cout: int, s: int = 1):
        super().__init__()
        self.dw = ConvBN(cin, cin, 3, s, groups=cin, act=False)
        self.pw = ConvBN(cin, cout, 1)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return x + y if self.res else y


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = ConvBN(c, c, 3)
        self.b = ConvBN(c, c, 3, act=False)

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


def up2(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")  # == models.up2 (expand/reshape)


class SpaceToDepth(nn.Module):
    def __init__(self, block: int):
        super().__init__()
        self.b = block

    def forward(self, x):
        n, c, h, w = x.shape
        b = self.b
        x = x.reshape(n, c, h // b, b, w // b, b).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(n, c * b * b, h // b, w // b)


class PersonDetector(nn.Module):
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
        self.hm_out = nn.Conv2d(width, 1, 1)
        self.box_out = nn.Conv2d(width, 4, 1)
        # same initial heads as models.py: centre prior p ~ 0.1, box logs start at e^1 cells
        nn.init.constant_(self.hm_out.bias, -2.19)
        nn.init.normal_(self.box_out.weight, 0, 0.01)
        nn.init.constant_(self.box_out.bias, 1.0)

    def forward(self, x):
        x = self.stem(x)
        c3 = self.c3(x)
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p4 = self.fuse4(self.lat4(c4) + up2(self.lat5(c5)))
        p3 = self.fuse3(self.lat3(c3) + up2(p4))
        return self.hm_out(self.hm_head(p3)), self.box_out(self.box_head(p3))


class TinyPoseNet(nn.Module):
    def __init__(self, c1: int = KPT_CHANNELS[0], c2: int = KPT_CHANNELS[1], c3: int = KPT_CHANNELS[2]):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2), ConvBN(16, c1, 3, 2))
        self.l1 = nn.Sequential(Residual(c1), Residual(c1))
        self.down2 = ConvBN(c1, c2, 3, 2)
        self.l2 = nn.Sequential(Residual(c2), DWSep(c2, c2), DWSep(c2, c2))
        self.down3 = DWSep(c2, c3, 2)
        self.l3 = nn.Sequential(DWSep(c3, c3), DWSep(c3, c3), DWSep(c3, c3), DWSep(c3, c3))
        self.up3 = ConvBN(c3, c2, 1)
        self.f2 = nn.Sequential(DWSep(c2, c2), DWSep(c2, c2))
        self.up2 = ConvBN(c2, c1, 1)
        self.f1 = nn.Sequential(Residual(c1))
        self.out = nn.Conv2d(c1, NUM_JOINTS, 1)
        nn.init.normal_(self.out.weight, 0, 0.001)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        x1 = self.l1(self.stem(x))
        x2 = self.l2(self.down2(x1))
        x3 = self.l3(self.down3(x2))
        y2 = self.f2(x2 + up2(self.up3(x3)))
        y1 = self.f1(x1 + up2(self.up2(y2)))
        return self.out(y1)
