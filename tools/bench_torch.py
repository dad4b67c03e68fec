#!/usr/bin/env python3
"""PyTorch training throughput for microcnn's default Fashion-MNIST model (models/fashion).

Same layers (conv 5x5x16 same + ReLU, max-pool 2, conv 5x5x32 valid + ReLU, max-pool 2,
dropout 0.25, dense 64 + ReLU, dropout 0.25, dense 10), batch 64, Adam, random 28x28 inputs.

`bench_torch.py IMAGES THREADS` prints one line: `torch images/s: <N> threads: <T>`.
`bench_torch.py --serve` reads `IMAGES THREADS` lines on stdin and answers each with that line
after one timed epoch, so host-train/benches/training.rs can interleave PyTorch and microcnn
rounds on a noisy machine (both then see the same interference).
"""
import sys
import time

import torch
from torch import nn


def make(images):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(800, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(images, 1, 28, 28)
    y = torch.randint(0, 10, (images,))
    model.train()
    return model, opt, x, y


def epoch(model, opt, x, y, threads):
    torch.set_num_threads(threads)
    loss_fn = nn.CrossEntropyLoss()
    images = x.shape[0]
    t0 = time.perf_counter()
    for i in range(0, images, 64):
        opt.zero_grad()
        loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
        loss.backward()
        opt.step()
    return images / (time.perf_counter() - t0)


def main():
    if sys.argv[1:2] == ["--serve"]:
        state = {}
        for line in sys.stdin:
            images, threads = (int(v) for v in line.split())
            if images not in state:
                state[images] = make(images)
                epoch(*state[images], threads)  # warm-up
            print(f"torch images/s: {epoch(*state[images], threads):.0f} threads: {threads}", flush=True)
        return
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 6400
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    state = make(images)
    epoch(*state, threads)  # warm-up
    print(f"torch images/s: {epoch(*state, threads):.0f} threads: {threads}")


if __name__ == "__main__":
    main()
