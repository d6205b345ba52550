#!/usr/bin/env python3
"""Writes tests/data/fixtures/distributed-sampler.json: the index lists PyTorch's
DistributedSampler (shuffle=True, drop_last=False) gives each rank, for a few dataset sizes,
world sizes, seeds and epochs, from the pinned torch; or (--check) verifies the committed file
still holds them. sampler_test.cc checks that Berth's sharding gives each rank exactly these
indices, in this order.

usage: sampler_reference.py [--out FILE] [--check]
"""
import os
import sys

import torch
from torch.utils.data import DistributedSampler

from fixture_file import write_or_check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# (examples, world size, seed, epoch): even and uneven splits, 1 to 4 ranks, a set smaller
# than the world, several epochs of one seed, and Berth's default seed.
CASES = [(10, 1, 42, 0), (10, 2, 42, 0), (10, 2, 42, 1), (37, 3, 7, 0), (37, 3, 7, 2), (64, 4, 0, 0),
         (101, 4, 123, 5), (3, 4, 1, 0), (1000, 2, 42, 3)]


def lists():
    out = []
    for n, world, seed, epoch in CASES:
        ranks = []
        for rank in range(world):
            s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False)
            s.set_epoch(epoch)
            ranks.append(list(s))
        out.append({"examples": n, "world": world, "seed": seed, "epoch": epoch, "ranks": ranks})
    return {"torch": torch.__version__, "cases": out}


def main():
    return write_or_check(__doc__,
                          os.path.join(HERE, "..", "data", "fixtures", "distributed-sampler.json"),
                          lists, "DistributedSampler fixture")


if __name__ == "__main__":
    sys.exit(main())
