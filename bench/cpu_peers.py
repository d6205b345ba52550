#!/usr/bin/env python3
"""Berth's CPU precisions beside the strongest CPU peers, in one run on one machine (issue 37).

The peers run in-process on the same sentences and the same token ids (the model's own
tokenizer, max length 128), length-sorted batches of 32, the same threads; each is timed
tokenizing and forward (load, export and quantization excluded), its logits checked against
eager fp32 transformers on the same batches:

  HF sorted fp32 / bf16         transformers, torch.inference_mode (bf16: weights cast)
  ONNX Runtime fp32             torch.onnx.export (TorchScript exporter), all graph optimizations
  ONNX Runtime int8             onnxruntime.quantization.quantize_dynamic (QInt8 weights, per channel)
  ONNX Runtime optimized + int8 the transformer optimizer (fused attention, LayerNorm, GELU) first
  OpenVINO fp32 / bf16          the same ONNX graph, INFERENCE_PRECISION_HINT f32 / bf16

Berth, each precision, two ways:
  engine    bench/engine_bench --engine-only: the engine in-process, tokenizing and forward, load
            excluded (its "engine, one Classify of all" row)
  process   `berth predict --precision P` on all the sentences as a process, load included; its
            logits are the ones checked against eager

Every runtime is loaded (and the ONNX models exported and quantized) first; then each of --rounds
rounds (default 3) times every row once, in turn, the order reversed every other round, and each
row's best round counts (bench/rounds.py): timing the peers first and Berth last once let the
VM's drift decide the ratios. Every round's figure is in the JSON.

Rows a CPU cannot run at speed are left out and say why (bf16 without avx512_bf16 or AMX: torch
and OpenVINO would emulate it or fall back to fp32).

usage: bench/cpu_peers.py [--model DIR | --shape bert-base] [--sst2 FILE] [--limit N]
                          [--threads N] [--build DIR] [--rounds N] [--json FILE]
Run it with the peers' Python (scripts/setup-peers.sh makes .venv-peers). Prints the table and,
with --json, writes every figure.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from rounds import interleaved
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import logging
logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_features():
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    names = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile"]
    return [n for n in names if n in flags]


def read_sst2(path, limit):
    with open(path, encoding="utf-8") as f:
        next(f)
        texts = [line.rstrip("\n").rsplit("\t", 1)[0].strip() for line in f if line.strip()]
    return texts[:limit] if limit else texts


def random_bert_base(out):
    """A bert-base-shaped classifier (random weights, seed 0) with bert-base-uncased's vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    torch.manual_seed(0)
    config = BertConfig(num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(config).eval().save_pretrained(out)
    BertTokenizerFast(vocab_file=os.path.join(ROOT, "data", "bert-base-uncased-vocab.txt")).save_pretrained(out)
    return out


class Batches:
    """Length-sorted batches of 32 token-id arrays, and the order to put results back in."""

    def __init__(self, tok, texts, size=32):
        self.tok, self.texts, self.size = tok, texts, size

    def encode(self):
        enc = self.tok(self.texts, truncation=True, max_length=128)
        order = sorted(range(len(self.texts)), key=lambda i: len(enc["input_ids"][i]))
        batches = []
        for s in range(0, len(order), self.size):
            idx = order[s:s + self.size]
            longest = max(len(enc["input_ids"][i]) for i in idx)
            feed = {}
            for name in ("input_ids", "attention_mask", "token_type_ids"):
                if name not in enc:
                    continue
                a = np.zeros((len(idx), longest), dtype=np.int64)
                for r, i in enumerate(idx):
                    a[r, :len(enc[name][i])] = enc[name][i]
                feed[name] = a
            batches.append((idx, feed))
        return batches


def peer(run, batches_of, n):
    """A peer's timed round: sentences/s (tokenizing included) and the logits; warmed up once here."""
    run(batches_of()[:2])  # warm-up: kernels, allocations

    def one_round():
        t0 = time.perf_counter()
        out = run(batches_of())
        sps = n / (time.perf_counter() - t0)
        logits = np.zeros((n, out[0][1].shape[1]), dtype=np.float64)
        for idx, l in out:
            logits[idx] = l
        return sps, logits
    return one_round


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a classifier directory (default: a random bert-base-shaped one)")
    ap.add_argument("--sst2", help="default: ../shared/data/sst2/validation.tsv, else data/sst2-sample")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="Berth's build directory")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds; each times every runtime once, in turn (the best of each counts)")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sst2 = args.sst2 or os.path.join(ROOT, "..", "shared", "data", "sst2", "validation.tsv")
    if not os.path.exists(sst2):
        sst2 = os.path.join(ROOT, "data", "sst2-sample", "validation.tsv")
    texts = read_sst2(sst2, args.limit)
    n = len(texts)
    work = tempfile.mkdtemp(prefix="berth-peers-")
    model_dir = args.model or random_bert_base(os.path.join(work, "model"))
    features = cpu_features()
    has_bf16 = "avx512_bf16" in features or "amx_tile" in features
    print("cpu_peers: %s, %d SST-2 sentences from %s, %d threads, CPU features: %s" %
          (os.path.basename(os.path.normpath(model_dir)), n, sst2, args.threads, " ".join(features)),
          file=sys.stderr)

    tok = AutoTokenizer.from_pretrained(model_dir)
    batches_of = Batches(tok, texts).encode
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    # Every runtime is set up first, then timed in interleaved rounds (bench/rounds.py).
    runners, skipped = {}, {}

    def torch_run(m, dtype):
        def run(batches):
            with torch.inference_mode():
                return [(idx, m(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.float().numpy())
                        for idx, feed in batches]
        return run

    runners["HF sorted fp32"] = peer(torch_run(model, torch.float32), batches_of, n)
    if has_bf16:
        m16 = AutoModelForSequenceClassification.from_pretrained(model_dir).eval().to(torch.bfloat16)
        runners["HF sorted bf16"] = peer(torch_run(m16, torch.bfloat16), batches_of, n)
    else:
        skipped["HF sorted bf16"] = "no avx512_bf16 or AMX: torch emulates bf16 matmuls (~150x slower)"

    # ONNX: one export, three ONNX Runtime variants, two OpenVINO precisions.
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    names = list(batches_of()[0][1].keys())
    onnx_fp32 = os.path.join(work, "model.onnx")
    sample = batches_of()[-1][1]
    t0 = time.perf_counter()
    torch.onnx.export(model, tuple(torch.from_numpy(sample[k]) for k in names), onnx_fp32, input_names=names,
                      output_names=["logits"], dynamic_axes={k: {0: "batch", 1: "seq"} for k in names},
                      opset_version=17, dynamo=False)
    export_s = time.perf_counter() - t0
    onnx_opt = os.path.join(work, "model-opt.onnx")
    from onnxruntime.transformers.optimizer import optimize_model
    cfg = model.config
    optimize_model(onnx_fp32, model_type="bert", num_heads=cfg.num_attention_heads,
                   hidden_size=cfg.hidden_size).save_model_to_file(onnx_opt)
    onnx_int8 = os.path.join(work, "model-int8.onnx")
    onnx_opt_int8 = os.path.join(work, "model-opt-int8.onnx")
    t0 = time.perf_counter()
    quantize_dynamic(onnx_fp32, onnx_int8, weight_type=QuantType.QInt8, per_channel=True)
    quantize_s = time.perf_counter() - t0
    # The optimizer's fused ops (com.microsoft domain) defeat shape inference: the quantizer is
    # told the float type, as its error message advises.
    import onnx
    quantize_dynamic(onnx_opt, onnx_opt_int8, weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    def ort_run(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

        def run(batches):
            return [(idx, sess.run(None, feed)[0]) for idx, feed in batches]
        return run

    for name, path in [("ONNX Runtime fp32", onnx_fp32), ("ONNX Runtime int8", onnx_int8),
                       ("ONNX Runtime optimized + int8", onnx_opt_int8)]:
        runners[name] = peer(ort_run(path), batches_of, n)

    import openvino as ov
    core = ov.Core()
    for name, hint in [("OpenVINO fp32", "f32"), ("OpenVINO bf16", "bf16")]:
        if hint == "bf16" and not has_bf16:
            skipped[name] = "no avx512_bf16 or AMX: OpenVINO runs bf16 as f32 on this CPU"
            continue
        compiled = core.compile_model(core.read_model(onnx_fp32), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": args.threads,
            "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def run(batches, request=request):
            return [(idx, request.infer(feed)[0].copy()) for idx, feed in batches]
        runners[name] = peer(run, batches_of, n)

    # Berth: the engine in-process, then `berth predict` as a process (its logits checked).
    berth = os.path.join(args.build, "berth")
    engine_bench = os.path.join(args.build, "bench", "engine_bench")
    input_file = os.path.join(work, "in.txt")
    with open(input_file, "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for t in texts)
    berth_extra = {}

    def engine_run(precision):
        def one_round():
            p = subprocess.run([engine_bench, "--model-dir", model_dir, "--precision", precision, "--sst2", sst2,
                                "--limit", str(n), "--engine-only", "--no-predict"], capture_output=True,
                               text=True, timeout=3600)
            if p.returncode != 0:
                sys.exit("cpu_peers: engine_bench failed: " + p.stderr[-500:])
            j = json.loads(p.stdout.strip().splitlines()[-1])
            berth_extra[precision] = {"quantize_seconds": j["quantize_seconds"]}
            return j["engine_sentences_per_second"], None
        return one_round

    def process_run(precision):
        def one_round():
            t0 = time.perf_counter()
            with open(input_file, "rb") as stdin:
                q = subprocess.run([berth, "predict", "--model", model_dir, "--precision", precision,
                                    "--max-length", "128", "--threads", str(args.threads)], stdin=stdin,
                                   capture_output=True, timeout=3600)
            seconds = time.perf_counter() - t0
            if q.returncode != 0:
                sys.exit("cpu_peers: berth predict failed: " + q.stderr.decode()[-500:])
            out = [json.loads(l) for l in q.stdout.decode().splitlines() if l.strip()]
            return n / seconds, np.array([r["logits"] for r in out], dtype=np.float64)
        return one_round

    for precision in ["fp32", "bf16", "int8"]:
        if precision == "bf16" and not has_bf16:
            skipped["Berth bf16"] = "no avx512_bf16 or AMX: torch emulates bf16 matmuls"
            continue
        runners["Berth %s engine" % precision] = engine_run(precision)
        runners["Berth %s process" % precision] = process_run(precision)

    # The rounds (bench/rounds.py); every round's figure goes to the JSON.
    rows, logits, per_round = interleaved(list(runners.items()), args.rounds, "cpu_peers", "sentences/s")
    eager = logits["HF sorted fp32"]

    # The table: each row against Berth's best engine figure, logits against eager fp32.
    best_berth = max(v for k, v in rows.items() if k.startswith("Berth") and k.endswith("engine"))
    report = {"cpu_features": features, "threads": args.threads, "sentences": n, "model": model_dir,
              "export_seconds": export_s, "ort_quantize_seconds": quantize_s, "berth": berth_extra,
              "rows": {}, "skipped": skipped, "rounds": per_round,
              "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "openvino": ov.__version__}}
    print("%-32s %12s %10s %14s %10s" % ("runtime", "sentences/s", "x best", "max|dlogit|", "agree"))
    eager_labels = eager.argmax(1)
    for name, v in sorted(rows.items(), key=lambda kv: kv[1]):
        diff = agree = None
        if name in logits:
            diff = float(np.abs(logits[name] - eager).max())
            agree = float((logits[name].argmax(1) == eager_labels).mean())
        report["rows"][name] = {"sentences_per_second": v, "max_logit_diff_vs_eager": diff, "label_agreement": agree}
        print("%-32s %12.1f %9.2fx %14s %10s" % (name, v, v / best_berth, "" if diff is None else "%.2e" % diff,
                                                  "" if agree is None else "%.2f%%" % (100 * agree)))
    for name, why in skipped.items():
        print("%-32s %12s   (%s)" % (name, "-", why))
    fastest_ort = max(rows["ONNX Runtime int8"], rows["ONNX Runtime optimized + int8"])
    print("Berth int8 engine / faster ONNX Runtime int8: %.2fx; process: %.2fx" %
          (rows["Berth int8 engine"] / fastest_ort, rows["Berth int8 process"] / fastest_ort))
    print("Berth fp32 engine / ONNX Runtime fp32: %.2fx" % (rows["Berth fp32 engine"] / rows["ONNX Runtime fp32"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
