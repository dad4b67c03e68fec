#!/usr/bin/env python3
"""PyTorch training throughput for microcnn's default Fashion-MNIST model (models/fashion).

Same layers (conv 5x5x16 same + ReLU, max-pool 2, conv 5x5x32 valid + ReLU, max-pool 2,
dropout 0.25, dense 64 + ReLU, dropout 0.25, dense 10), batch 64, Adam, random 28x28 inputs.
Prints one line: `torch images/s: <N> threads: <T>`. Used by host-train/benches/training.rs.
"""
import sys
import time

import torch
from torch import nn


def main():
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 6400
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(800, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.rand(images, 1, 28, 28)
    y = torch.randint(0, 10, (images,))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for warm in (True, False):
        t0 = time.perf_counter()
        for i in range(0, images, 64):
            opt.zero_grad()
            loss = loss_fn(model(x[i:i + 64]), y[i:i + 64])
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
    print(f"torch images/s: {images / dt:.0f} threads: {threads}")


if __name__ == "__main__":
    main()
