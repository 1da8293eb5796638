"""The peer for TrainStepBench: the same CVRL training step in PyTorch (Debian's python3-torch 1.13).

Builds our R3D layout (CVRL stem (5,7,7)/2 + max-pool, basic or bottleneck blocks, temporal kernel 3 on
the first conv of layer3/layer4 blocks, width multiplier), the 3-layer projection head and the
contrastive loss (sum of both directions), then times forward + backward + SGD on random clips.
Prints: parameters median_seconds torch_version blas.

    /usr/bin/python3 train_step_peer.py ARCH WIDTH BATCH FRAMES SIZE STEPS THREADS
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

arch, width, batch, frames, size, steps, threads = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
LAYERS = {"r3d18": ("basic", [2, 2, 2, 2]), "r3d34": ("basic", [3, 4, 6, 3]), "r3d50": ("bottleneck", [3, 4, 6, 3])}
kind, layers = LAYERS[arch]


def conv(cin, cout, k, s):
    return nn.Conv3d(cin, cout, k, s, tuple(v // 2 for v in k), bias=False)


def bn(c):
    return nn.BatchNorm3d(c, eps=1e-5, momentum=0.1)


class Block(nn.Module):
    def __init__(self, cin, w, stride, kt):
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
    def __init__(self):
        super().__init__()
        stem = max(1, round(64 * width))
        self.stem = nn.Sequential(conv(3, stem, (5, 7, 7), 2), bn(stem), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        blocks, cin = [], stem
        for i, n in enumerate(layers):
            w = max(1, round(64 * 2 ** i * width))
            for b in range(n):
                blocks.append(Block(cin, w, 2 if i > 0 and b == 0 else 1, 3 if i >= 2 else 1))
                cin = w * (4 if kind == "bottleneck" else 1)
        self.blocks = nn.Sequential(*blocks)
        self.dim = cin

    def forward(self, x):
        return self.blocks(self.stem(x)).mean((2, 3, 4))


encoder = Encoder()
d = encoder.dim
head = nn.Sequential(*[m for _ in range(3) for m in (nn.Linear(d, d), nn.BatchNorm1d(d, eps=1e-5, momentum=0.003), nn.ReLU())], nn.Linear(d, 128))
model = nn.Sequential(encoder, head).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
kernels = [p for p in model.parameters() if p.dim() >= 2]


def loss_fn(z, tau=0.1):
    b = z.shape[0] // 2
    h1, h2 = F.normalize(z[:b], dim=1), F.normalize(z[b:], dim=1)
    labels, mask = torch.arange(b), torch.eye(b) * 1e9
    ab, aa = h1 @ h2.T / tau, h1 @ h1.T / tau - mask
    ba, bb = h2 @ h1.T / tau, h2 @ h2.T / tau - mask
    return F.cross_entropy(torch.cat([ab, aa], 1), labels) + F.cross_entropy(torch.cat([ba, bb], 1), labels)


times = []
for step in range(steps + 2):
    start = time.perf_counter()
    loss = loss_fn(model(torch.rand(2 * batch, 3, frames, size, size)))
    optimizer.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in kernels:
            p.grad.add_(p, alpha=1e-6)
    optimizer.step()
    if step >= 2:
        times.append(time.perf_counter() - start)
blas = "openblas" if "openblas" in torch.__config__.show().lower() or any("openblas" in l for l in open("/proc/self/maps")) else "reference"
print(sum(p.numel() for p in model.parameters()), sorted(times)[len(times) // 2], torch.__version__, blas)
