#!/usr/bin/env python3
"""Data-parallel fine-tuning through `berth finetune --nproc-per-node 2` (c10d Gloo on loopback).

1. Equivalence: 2 ranks with batch b, no shuffle, dropout 0, padding to max length, reach the
   same per-update losses and final weights as 1 process with batch 2b (1e-5 relative; weights
   as torch.allclose with rtol 1e-5, atol 1e-7).
2. Fault: kill -9 one rank mid-epoch; the launcher stops the other, exits non-zero and says
   which rank failed and how to resume; `--resume` completes the run with the final weights of
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


def closeness(a, b, rtol=1e-5, atol=1e-7):
    """torch.allclose's measure: the largest |x - y| / (atol + rtol |y|) over every weight (<= 1:
    close). The absolute floor is for weights whose true gradient is zero, such as attention key
    biases (softmax ignores a shift of all scores): they hold rounding noise near 1e-8 that
    Adam turns into equally small, differently rounded steps."""
    worst = 0.0
    for name in b:
        for p, q in zip(a[name], b[name]):
            d = abs(p - q)
            if d > 0:
                tol = atol + rtol * abs(q)
                worst = max(worst, d / tol if tol > 0 else float("inf"))
    return worst


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

        # 1. Equivalence.
        one = run(cli, common + ["--batch-size", "16", "--output", os.path.join(work, "one"), "--threads", "1",
                                 "--log-jsonl", os.path.join(work, "one.jsonl")])
        check(one.returncode == 0, "1 process, batch 16: %s" % one.stderr[-300:])
        two = run(cli, common + ["--batch-size", "8", "--nproc-per-node", "2", "--output", os.path.join(work, "two"),
                                 "--log-jsonl", os.path.join(work, "two.jsonl")])
        check(two.returncode == 0, "2 ranks, batch 8 each: %s" % two.stderr[-300:])
        if one.returncode == 0 and two.returncode == 0:
            res = json.loads(two.stdout)
            check(res.get("world_size") == 2 and res["updates"] == json.loads(one.stdout)["updates"] == 8,
                  "same number of updates (8), world_size reported: %s" % {k: res.get(k) for k in ("updates", "world_size")})
            l1, l2 = losses(os.path.join(work, "one.jsonl")), losses(os.path.join(work, "two.jsonl"))
            worst = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(l2, l1)) if l1 and len(l1) == len(l2) else 1
            print("per-update losses, 1 process:", ["%.6f" % x for x in l1])
            print("per-update losses, 2 ranks:   ", ["%.6f" % x for x in l2])
            check(worst <= 1e-5, "per-update losses agree within 1e-5 relative (worst %.2e)" % worst)
            w = closeness(read_safetensors(os.path.join(work, "two", "model.safetensors")),
                          read_safetensors(os.path.join(work, "one", "model.safetensors")))
            check(w <= 1, "final weights agree within 1e-5 relative (+1e-7 absolute; worst %.2f of the tolerance)" % w)

        # 2. Fault: kill -9 rank 1 mid-run, then --resume.
        train = os.path.join(data, "sst2-sample", "train.tsv")
        fault = ["--base-model", "config:bert-tiny", "--train", train, "--max-steps", "60", "--batch-size", "8",
                 "--max-length", "64", "--save-steps", "5", "--seed", "5", "--nproc-per-node", "2", "--json"]
        ref = run(cli, fault + ["--output", os.path.join(work, "ref")])
        check(ref.returncode == 0, "uninterrupted 2-rank run: %s" % ref.stderr[-300:])
        log = os.path.join(work, "cut.jsonl")
        out = os.path.join(work, "cut")
        p = subprocess.Popen([cli, "finetune"] + fault + ["--output", out, "--log-jsonl", log],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = None
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None:
            done = len(losses(log)) if os.path.exists(log) else 0
            if done >= 12:
                ranks = children(p.pid)
                if len(ranks) == 2:
                    killed = ranks[1]
                    os.kill(killed, signal.SIGKILL)
                break
            time.sleep(0.01)
        stdout, stderr = p.communicate(timeout=120)
        print(stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)")
        check(killed is not None, "rank 1 killed mid-run (after update 12 of 60)")
        check(p.returncode not in (0, None), "the launcher exits non-zero (%s)" % p.returncode)
        check("rank 1 was killed by signal 9" in stderr and "--resume" in stderr,
              "the launcher names the rank that died and says how to resume")
        check(not os.path.exists(os.path.join(out, "model.safetensors")), "no model was saved by the broken run")
        resumed = run(cli, fault + ["--output", out, "--log-jsonl", log, "--resume"])
        check(resumed.returncode == 0, "--resume completes the run: %s" % resumed.stderr[-300:])
        if resumed.returncode == 0 and ref.returncode == 0:
            w = closeness(read_safetensors(os.path.join(out, "model.safetensors")),
                          read_safetensors(os.path.join(work, "ref", "model.safetensors")), 0, 0)
            check(w == 0, "resumed weights are bit-identical to the uninterrupted run's")

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
            w = closeness(read_safetensors(os.path.join(work, "env", "model.safetensors")),
                          read_safetensors(os.path.join(work, "two", "model.safetensors")), 0, 0)
            check(w == 0, "bit-identical weights to the launcher's ranks")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
