"""Our R3D layout in PyTorch, for the peer benchmarks (Debian's python3-torch 1.13): CVRL stem
(5,7,7)/2 + max-pool, basic or bottleneck blocks, temporal kernel 3 on the first conv of every
layer3/layer4 block, width multiplier. The same networks as CvrlServe.Training.Modules.R3dEncoder
(the benchmarks compare parameter counts to prove it)."""
import torch.nn as nn
import torch.nn.functional as F

LAYERS = {"r3d18": ("basic", [2, 2, 2, 2]), "r3d34": ("basic", [3, 4, 6, 3]), "r3d50": ("bottleneck", [3, 4, 6, 3])}


def conv(cin, cout, k, s):
    return nn.Conv3d(cin, cout, k, s, tuple(v // 2 for v in k), bias=False)


def bn(c):
    return nn.BatchNorm3d(c, eps=1e-5, momentum=0.1)


class Block(nn.Module):
    def __init__(self, kind, cin, w, stride, kt):
        super().__init__()
        out = w * (4 if kind == "bottleneck" else 1)
        if kind == "bottleneck":
            self.convs = nn.ModuleList([conv(cin, w, (kt, 1, 1), 1), conv(w, w, (1, 3, 3), (1, stride, stride)), conv(w, out, (1, 1, 1), 1)])
            self.bns = nn.ModuleList([bn(w), bn(w), bn(out)])
        else:
            self.convs = nn.ModuleList([conv(cin, w, (kt, 3, 3), (1, stride, stride)), conv(w, w, (1, 3, 3), 1)])
            self.bns = nn.ModuleList([bn(w), bn(w)])
        self.down = None
        if cin != out or stride != 1:
            self.down = nn.Sequential(nn.Conv3d(cin, out, 1, (1, stride, stride), bias=False), bn(out))

    def forward(self, x):
        y = x
        for i, (c, b) in enumerate(zip(self.convs, self.bns)):
            y = b(c(y))
            if i < len(self.convs) - 1:
                y = F.relu(y)
        return F.relu(y + (x if self.down is None else self.down(x)))


class Encoder(nn.Module):
    def __init__(self, arch, width):
        super().__init__()
        kind, layers = LAYERS[arch]
        stem = max(1, round(64 * width))
        self.stem = nn.Sequential(conv(3, stem, (5, 7, 7), 2), bn(stem), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        blocks, cin = [], stem
        for i, n in enumerate(layers):
            w = max(1, round(64 * 2 ** i * width))
            for b in range(n):
                blocks.append(Block(kind, cin, w, 2 if i > 0 and b == 0 else 1, 3 if i >= 2 else 1))
                cin = w * (4 if kind == "bottleneck" else 1)
        self.blocks = nn.Sequential(*blocks)
        self.dim = cin

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3, 4))


