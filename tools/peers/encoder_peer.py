"""The peer for EncoderBench: our R3D forward (eval, no_grad) in Debian's PyTorch 1.13. Prints the median
seconds of REPS forwards after one warm-up.

    /usr/bin/python3 encoder_peer.py ARCH N FRAMES SIZE REPS THREADS
"""
import sys
import time

import torch

from cvrl_r3d import Encoder

arch, n, frames, size, reps, threads = sys.argv[1], *map(int, sys.argv[2:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = Encoder(arch, 1.0).eval()
clip = torch.rand(n, 3, frames, size, size)
times = []
with torch.no_grad():
    for r in range(reps + 1):
        start = time.perf_counter()
        model(clip)
        if r > 0:
            times.append(time.perf_counter() - start)
print(sorted(times)[len(times) // 2])
