#!/usr/bin/env python3
"""Data-parallel training throughput: 1 rank vs N local ranks (c10d Gloo on loopback) on a
bert-small-shaped model (config:bert-small: 4 layers, hidden 512), through `berth finetune`.

Both runs use the same per-rank batch, sequences padded to --max-length (so tokens = samples x
max length), and the machine's cores split evenly among the ranks. Reported per run: samples/s,
tokens/s, mean step time, and the all-reduce time per step (gradient averaging, ~29M fp32
parameters). On a 2-core machine 2 ranks are not faster than 1: the figure to read is the
communication overhead per step.

usage: bench/distributed_bench.py [--berth build/berth] [--ranks 2] [--steps 30] [--batch-size 8]
                                  [--max-length 128] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def data_file():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.path.join(here, "..", "..", "shared", "data", "sst2", "train.tsv"),
              os.path.join(here, "..", "data", "sst2-sample", "train.tsv")):
        if os.path.exists(p):
            return os.path.normpath(p)
    sys.exit("no SST-2 data found")


def run(args, ranks, work):
    cmd = [args.berth, "finetune", "--base-model", "config:bert-small", "--train", data_file(),
           "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length",
           str(args.max_length), "--pad-to-max-length", "--save-steps", str(args.steps + 1), "--json",
           "--output", os.path.join(work, "r%d" % ranks)]
    if ranks > 1:
        cmd += ["--nproc-per-node", str(ranks)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("berth finetune failed:\n" + p.stderr[-2000:])
    r = json.loads(p.stdout)
    samples_per_s = r["samples_per_second"]
    step = r["train_seconds"] / max(1, r["updates"])
    return {"ranks": ranks, "batch_per_rank": args.batch_size, "samples_per_second": samples_per_s,
            "tokens_per_second": samples_per_s * args.max_length, "step_seconds": step,
            "allreduce_seconds_per_step": r.get("allreduce_seconds", 0.0) / max(1, r["updates"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "berth"))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-dbench-") as work:
        rows = [run(args, 1, work), run(args, args.ranks, work)]
    if args.json:
        print(json.dumps(rows))
        return
    print("%6s %10s %12s %12s %10s %14s %9s" % ("ranks", "batch/rank", "samples/s", "tokens/s", "step s",
                                                 "allreduce s", "comm share"))
    for r in rows:
        print("%6d %10d %12.1f %12.0f %10.3f %14.3f %8.1f%%" % (
            r["ranks"], r["batch_per_rank"], r["samples_per_second"], r["tokens_per_second"], r["step_seconds"],
            r["allreduce_seconds_per_step"], 100 * r["allreduce_seconds_per_step"] / r["step_seconds"]))


if __name__ == "__main__":
    main()
