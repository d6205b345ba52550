#!/usr/bin/env python3
"""Classify throughput with 1, 2 and 3 serve replicas over one PostgreSQL, in one run: the path
a client of a scaled-out Berth takes (round robin over the replicas' addresses, each call
resolving its model through the store, then the replica's batcher).

It starts a PostgreSQL of its own on loopback (Debian's binaries, as the tests do), one train
worker that fine-tunes a small model for a few steps, then for N = 1, 2, 3 serve replicas
(--inference-threads 1 each) drives `berth loadtest` over all of them at a rate above what they
can answer; the achieved rate of OK calls is the throughput. The ratio to one replica is the
result; absolute rates depend on the machine. On a machine with C cores, N replicas of one
inference thread each can use at most min(N, C) cores, so the figure flattens past C.

usage: bench/scale_out_bench.py [--build build] [--model-config bert-mini] [--duration 5]
                                [--rate 4000] [--concurrency 32] [--texts-per-request 1]
Prints a table and one JSON line.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from checks import Postgres, start_server  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model-config", default="bert-mini", help="config:NAME of the model served")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rate", type=float, default=4000, help="calls started per second (above capacity)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--texts-per-request", type=int, default=1)
    ap.add_argument("--replicas", default="1,2,3")
    a = ap.parse_args()
    server_bin, cli = os.path.join(a.build, "berth-server"), os.path.join(a.build, "berth")
    work = tempfile.mkdtemp(prefix="berth-scaleout-bench-")
    pg = Postgres()
    procs = []
    try:
        pg.psql("postgres", "CREATE DATABASE berth")
        common = ["--data-dir", os.path.join(work, "data"), "--store", pg.url("berth"), "--metrics-listen", ""]

        def start(name, extra):
            d = os.path.join(work, name)
            os.makedirs(d)
            p, addr = start_server(server_bin, d, common + extra)
            procs.append(p)
            return addr

        trainer = start("train", ["--role", "train", "--worker-id", "train", "--training-threads", "1"])
        data = os.path.join(ROOT, "data", "sst2-sample", "train.tsv")
        p = subprocess.run([cli, "upload", data, "--server", trainer], capture_output=True, text=True, check=True)
        dataset = json.loads(p.stdout)["dataset_id"]
        p = subprocess.run([cli, "train", "--server", trainer, "--base-model", "config:" + a.model_config, "--train",
                            dataset, "--name", "bench", "--max-steps", "2", "--batch-size", "8", "--watch",
                            "--json"], capture_output=True, text=True, check=True)
        print("model: config:%s, fine-tuned 2 steps (%s)" % (a.model_config, json.loads(p.stdout)["state"]),
              file=sys.stderr)
        replicas = [start("serve-%d" % i, ["--role", "serve", "--inference-threads", "1", "--preload", "bench"])
                    for i in range(max(int(n) for n in a.replicas.split(",")))]
        rows = []
        for n in [int(x) for x in a.replicas.split(",")]:
            target = replicas[0] if n == 1 else "ipv4:" + ",".join(replicas[:n])
            p = subprocess.run([cli, "loadtest", "--server", target, "--model", "bench", "--rate", str(a.rate),
                                "--duration", str(a.duration), "--concurrency", str(a.concurrency),
                                "--texts-per-request", str(a.texts_per_request), "--allow-codes",
                                "RESOURCE_EXHAUSTED"], capture_output=True, text=True)
            r = json.loads(p.stdout)
            rows.append({"replicas": n, "ok_calls_per_second": r["ok_rate"], "latency_ms": r.get("latency_ms"),
                         "skipped_client_saturated": r.get("skipped_client_saturated"), "codes": r.get("codes")})
            print("  %d replica(s): %.1f OK calls/s" % (n, r["ok_rate"]), file=sys.stderr)
        base = rows[0]["ok_calls_per_second"] or 1
        print("| serve replicas | OK calls/s | vs one | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for r in rows:
            lat = r["latency_ms"] or {}
            print("| %d | %.1f | %.2fx | %.1f | %.1f |" % (r["replicas"], r["ok_calls_per_second"],
                                                          r["ok_calls_per_second"] / base, lat.get("p50", 0),
                                                          lat.get("p99", 0)))
        print(json.dumps({"model": "config:" + a.model_config, "cores": os.cpu_count(), "rows": rows}))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
