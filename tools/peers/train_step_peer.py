"""The peer for TrainStepBench: the same CVRL training step in PyTorch (Debian's python3-torch 1.13).

Builds our R3D layout (cvrl_r3d.py), the 3-layer projection head and the contrastive loss (sum of both
directions), then times forward + backward + SGD on random clips.
Prints: parameters median_seconds torch_version blas.

    /usr/bin/python3 train_step_peer.py ARCH WIDTH BATCH FRAMES SIZE STEPS THREADS
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvrl_r3d import Encoder

arch, width, batch, frames, size, steps, threads = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
encoder = Encoder(arch, width)
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
