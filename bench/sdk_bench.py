#!/usr/bin/env python3
"""The Python SDK's overhead against the C++ CLI (issue #35's target: at most 1.1x), in one run:
`client.classify(texts)` of --texts SST-2 sentences through the SDK (HTTP, sent in chunks of
the server's --max-texts), and `berth classify --file` on the same server (gRPC, one request) as a
whole process. Each figure is the best of --rounds; the model is the bert-tiny fixture, so the
client's share of the time is as large as it gets.

usage: .venv-clients/bin/python bench/sdk_bench.py [--build build] [--texts 1000] [--rounds 5]
       [--json OUT]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import berth  # noqa: E402
from checks import start_server  # noqa: E402


def sst2_texts(n):
    for p in [os.path.join(ROOT, "..", "shared", "data", "sst2", "validation.tsv"),
              os.path.join(ROOT, "data", "sst2-sample", "train.tsv")]:
        if os.path.exists(p):
            rows = [l.split("\t")[0] for l in open(p, encoding="utf-8").read().splitlines()[1:] if l.strip()]
            while len(rows) < n:
                rows += rows
            return rows[:n], p
    sys.exit("no SST-2 file")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    texts, source = sst2_texts(a.texts)
    cli = os.path.join(a.build, "berth")
    fixtures = os.path.join(ROOT, "tests", "data", "fixtures")
    work = tempfile.mkdtemp(prefix="berth-sdk-bench-")
    server = None
    try:
        server, addr = start_server(os.path.join(a.build, "berth-server"), work, [
            "--data-dir", os.path.join(work, "data"), "--model-roots", fixtures,
            "--metrics-listen", "127.0.0.1:0", "--max-texts", str(a.texts)])
        url = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        p = subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir",
                            os.path.join(fixtures, "bert-tiny-uncased")], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        text_file = os.path.join(work, "texts.txt")
        open(text_file, "w", encoding="utf-8").write("\n".join(texts) + "\n")
        client = berth.Berth(url, model="tiny")
        client.classify(texts[:32])  # warm: the connection and the limit
        sdk = cli_best = float("inf")
        for _ in range(a.rounds):  # interleaved, so drift hits both
            t = time.perf_counter()
            got = client.classify(texts)
            sdk = min(sdk, time.perf_counter() - t)
            t = time.perf_counter()
            p = subprocess.run([cli, "classify", "--server", addr, "--model", "tiny", "--file", text_file],
                               capture_output=True, text=True)
            cli_best = min(cli_best, time.perf_counter() - t)
            if p.returncode != 0:
                sys.exit(p.stderr)
        want = [json.loads(l)["label"] for l in p.stdout.splitlines()]
        agree = sum(g.label == w for g, w in zip(got, want)) / len(texts)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    res = {"texts": len(texts), "source": os.path.relpath(source, ROOT), "sdk_seconds": sdk,
           "cli_seconds": cli_best, "ratio": sdk / cli_best, "label_agreement": agree}
    print("classify %d SST-2 sentences, bert-tiny, one server" % len(texts))
    print("  berth classify --file (C++ CLI, gRPC, whole process)  %.3f s" % cli_best)
    print("  Berth.classify (Python SDK, HTTP)                     %.3f s  %.2fx the CLI  (labels agree: %.0f%%)" %
          (sdk, sdk / cli_best, 100 * agree))
    if a.json:
        json.dump(res, open(a.json, "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
