#!/usr/bin/env python3
"""Data-parallel fine-tuning through `berth finetune --nproc-per-node 2` (c10d Gloo on loopback).

1. Equivalence, bit for bit: 2 ranks with batch b (no shuffle, dropout 0, padding to max
   length) reach exactly the per-update losses and final weights of 1 process that accumulates
   the same two micro-batches of b per update. The maths allows exactness there: each rank's
   micro-batch is the one process's micro-batch (same rows, same shapes, one thread each), the
   all-reduce of two ranks adds two numbers (g0 + g1, the same either way round), and scaling by
   a power of two is exact, so (g0 + g1) * 0.5 == g0 * 0.5 + g1 * 0.5 and everything after
   (clipping, AdamW) sees the same bits. Against one process with batch 2b the gradients are
   summed in another order, and the difference depends on the machine's kernels: a tolerance
   there passed on one machine and failed on another of the same kind.
2. Fault: kill -9 each rank in turn mid-epoch; the launcher stops the other, exits non-zero and
   names the rank killed (not its peer, which fails too once it vanished) and how to resume; `--resume` completes the run with the final weights of
   an uninterrupted 2-rank run (dropout on: each rank's dropout stream is a function of the
   update, so a resumed run draws what the uninterrupted one drew).
3. Torchrun's variables: two processes started by hand with WORLD_SIZE/RANK/MASTER_* and no
   launcher give the launcher's result.

usage: distributed_test.py berth DATA_DIR FIXTURES_DIR
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from array import array

from checks import check, failures


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a = array("f")
        a.frombytes(data[t["data_offsets"][0]:t["data_offsets"][1]])
        out[name] = a
    return out


def max_difference(a, b):
    """The largest |x - y| over every float32 weight, with the tensor it is in."""
    worst, where = 0.0, None
    for name in b:
        for p, q in zip(a[name], b[name]):
            if abs(p - q) > worst:
                worst, where = abs(p - q), name
    return worst, where


def losses(path):
    return [json.loads(l)["loss"] for l in open(path) if l.strip()]


def run(cli, args, env=None, timeout=600):
    return subprocess.run([cli, "finetune"] + args, capture_output=True, text=True, timeout=timeout,
                          env=env)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def main():
    cli, data, fixtures = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="berth-dist-")
    try:
        rows = open(os.path.join(data, "sst2-sample", "train.tsv")).read().splitlines()
        small = os.path.join(work, "small.tsv")
        with open(small, "w") as f:
            f.write("\n".join(rows[:65]) + "\n")  # header + 64 rows
        base = os.path.join(fixtures, "bert-tiny-train")  # dropout 0 in its config
        common = ["--base-model", base, "--train", small, "--epochs", "2", "--no-shuffle", "--pad-to-max-length",
                  "--max-length", "32", "--lr", "1e-3", "--seed", "3", "--json"]

        # 1. Equivalence. Rank r takes rows r, r + 2, ... of each global batch of 16; the one
        # process reads them in that order, so its micro-batches are the ranks' batches.
        body = rows[1:65]
        ranked = []
        for i in range(0, len(body), 16):
            ranked += body[i:i + 16][0::2] + body[i:i + 16][1::2]
        reordered = os.path.join(work, "ranked.tsv")
        with open(reordered, "w") as f:
            f.write("\n".join([rows[0]] + ranked) + "\n")
        one = run(cli, common[:3] + [reordered] + common[4:] +
                  ["--batch-size", "8", "--grad-accum", "2", "--output", os.path.join(work, "one"),
                   "--threads", "1", "--log-jsonl", os.path.join(work, "one.jsonl")])
        check(one.returncode == 0, "1 process, 2 micro-batches of 8 per update: %s" % one.stderr[-300:])
        two = run(cli, common + ["--batch-size", "8", "--nproc-per-node", "2", "--output", os.path.join(work, "two"),
                                 "--log-jsonl", os.path.join(work, "two.jsonl")])
        check(two.returncode == 0, "2 ranks, batch 8 each: %s" % two.stderr[-300:])
        if one.returncode == 0 and two.returncode == 0:
            res = json.loads(two.stdout)
            check(res.get("world_size") == 2 and res["updates"] == json.loads(one.stdout)["updates"] == 8,
                  "same number of updates (8), world_size reported: %s" % {k: res.get(k) for k in ("updates", "world_size")})
            l1, l2 = losses(os.path.join(work, "one.jsonl")), losses(os.path.join(work, "two.jsonl"))
            print("per-update losses, 1 process:", ["%.9g" % x for x in l1])
            print("per-update losses, 2 ranks:   ", ["%.9g" % x for x in l2])
            check(len(l1) == 8 and l1 == l2, "per-update losses are identical")
            d, where = max_difference(read_safetensors(os.path.join(work, "two", "model.safetensors")),
                                      read_safetensors(os.path.join(work, "one", "model.safetensors")))
            check(d == 0, "final weights are bit-identical (largest difference %.3g, in %s)" % (d, where))

        # 2. Fault: kill -9 each rank in turn mid-run, then --resume the second run.
        train = os.path.join(data, "sst2-sample", "train.tsv")
        fault = ["--base-model", "config:bert-tiny", "--train", train, "--max-steps", "60", "--batch-size", "8",
                 "--max-length", "64", "--save-steps", "5", "--seed", "5", "--nproc-per-node", "2", "--json"]
        ref = run(cli, fault + ["--output", os.path.join(work, "ref")])
        check(ref.returncode == 0, "uninterrupted 2-rank run: %s" % ref.stderr[-300:])
        # Each rank in turn: the launcher names the one killed, never the peer that exits
        # because it vanished (rank 0 may well exit first when rank 1 is killed).
        for victim in (0, 1):
            log = os.path.join(work, "cut-%d.jsonl" % victim)
            out = os.path.join(work, "cut-%d" % victim)
            p = subprocess.Popen([cli, "finetune"] + fault + ["--output", out, "--log-jsonl", log],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            killed = None
            deadline = time.time() + 300
            while time.time() < deadline and p.poll() is None:
                done = len(losses(log)) if os.path.exists(log) else 0
                if done >= 12:
                    ranks = children(p.pid)
                    if len(ranks) == 2:
                        killed = ranks[victim]
                        os.kill(killed, signal.SIGKILL)
                    break
                time.sleep(0.01)
            stdout, stderr = p.communicate(timeout=120)
            print(stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)")
            check(killed is not None, "rank %d killed mid-run (after update 12 of 60)" % victim)
            check(p.returncode not in (0, None), "the launcher exits non-zero (%s)" % p.returncode)
            check("rank %d was killed by signal 9" % victim in stderr and "--resume" in stderr,
                  "the launcher names rank %d, the one killed, and says how to resume" % victim)
        check(not os.path.exists(os.path.join(out, "model.safetensors")), "no model was saved by the broken run")
        resumed = run(cli, fault + ["--output", out, "--log-jsonl", log, "--resume"])
        check(resumed.returncode == 0, "--resume completes the run: %s" % resumed.stderr[-300:])
        if resumed.returncode == 0 and ref.returncode == 0:
            d, where = max_difference(read_safetensors(os.path.join(out, "model.safetensors")),
                                      read_safetensors(os.path.join(work, "ref", "model.safetensors")))
            check(d == 0, "resumed weights are bit-identical to the uninterrupted run's (%.3g in %s)" % (d, where))

        # 3. Torchrun's variables, no launcher.
        port = free_port()
        procs = []
        for r in (0, 1):
            env = dict(os.environ, WORLD_SIZE="2", RANK=str(r), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            procs.append(subprocess.Popen([cli, "finetune"] + common + ["--batch-size", "8", "--output",
                                                                         os.path.join(work, "env")],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outs = [q.communicate(timeout=300) for q in procs]
        check(all(q.returncode == 0 for q in procs), "ranks started from torchrun's variables succeed")
        check(outs[0][0].strip() != "" and outs[1][0].strip() == "", "only rank 0 prints the result")
        if os.path.exists(os.path.join(work, "two", "model.safetensors")) and procs[0].returncode == 0:
            d, where = max_difference(read_safetensors(os.path.join(work, "env", "model.safetensors")),
                                      read_safetensors(os.path.join(work, "two", "model.safetensors")))
            check(d == 0, "bit-identical weights to the launcher's ranks (%.3g in %s)" % (d, where))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
