#!/usr/bin/env python3
"""Hugging Face baseline for bench/gpu_bench on the same GPU, with the machine's own torch and
transformers: BertForSequenceClassification of bert-base shape (random weights; the same work
as pretrained ones), seq 128. Two peers: eager, and what an expert runs in 2026, the same model
under torch.compile.

- training at batch 32, 128 and 256: what the Trainer does per step with bf16=True — autocast
  to bf16 with fp32 master weights, loss.backward(), clip_grad_norm_(1.0), torch's AdamW, a
  linear schedule, zero_grad(set_to_none=True), the loss read back — samples/s after warm-up,
  once with AdamW's foreach implementation (torch's default) and once with fused=True (the
  Trainer's default optim, "adamw_torch_fused");
- training compiled (--compile-train-modes, default "default,max-autotune-no-cudagraphs", at
  --compile-train-batches): torch.compile(model, mode=...) with fused AdamW, as the Trainer's
  torch_compile=True does;
- inference, eager, bf16 weights: SST-2 validation in batches of 128 in file order and
  length-sorted, each padded to its longest sentence (what a plain loop or a pipeline does), and
  fixed 128 x 128 batches; compiled with mode="reduce-overhead" (CUDA graphs) for the fixed
  batches and the sorted SST-2 (dynamic shapes, one graph per batch shape);
- one 16-token sentence (batch 1): the median latency of 200 calls, eager and compiled;
- the peak of torch.cuda.max_memory_allocated.

Compile time is reported apart (*_compile_seconds: the warm-up calls that compiled and, for
reduce-overhead, recorded the graphs) and never counted in a throughput.

usage: bench/hf_baseline.py [--device cuda] [--steps 20] [--sst2 FILE] [--vocab FILE]
                            [--train-batches 32,128,256] [--sections train,infer,compile]
                            [--compile-train-modes default,max-autotune-no-cudagraphs]
                            [--compile-train-batches 32,256]
Prints one JSON line with the same keys as gpu_bench (the fused-AdamW training figures under
train_bf16_seq128_batchN_fused_samples_per_second, compiled ones under ..._compile_<mode>_...).
"""
import argparse
import json
import os
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def mode_key(mode):
    return mode.replace("-", "_")


def train_rate(cfg, dev, batch, steps, fused, compile_mode=None):
    """Samples/s of the Trainer's step; with compile_mode, also the seconds the warm-up took."""
    torch.manual_seed(1)
    model = BertForSequenceClassification(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True if fused else None)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    run = torch.compile(model, mode=None if compile_mode == "default" else compile_mode) \
        if compile_mode else model
    ids = torch.randint(1000, cfg.vocab_size, (batch, 128), device=dev)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,), device=dev)
    warmup = 3
    sync(dev)
    w0 = time.perf_counter()
    for step in range(steps + warmup):
        if step == warmup:
            sync(dev)
            t0 = time.perf_counter()
            warmup_seconds = t0 - w0
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss = run(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the Trainer logs the loss; this is also Berth's one sync per update
    sync(dev)
    rate = batch * steps / (time.perf_counter() - t0)
    del model, opt, sched, run
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rate, warmup_seconds


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sst2", default=os.path.join(here, "..", "data", "sst2-sample", "validation.tsv"))
    ap.add_argument("--vocab", default=os.path.join(here, "..", "data", "bert-base-uncased-vocab.txt"))
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--train-batches", default="32,128,256")
    ap.add_argument("--sections", default="train,infer,compile",
                    help="which to measure: train (eager), infer (eager), compile (every compiled row)")
    ap.add_argument("--compile-train-modes", default="default,max-autotune-no-cudagraphs")
    ap.add_argument("--compile-train-batches", default="32,256")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    dev = torch.device(args.device)
    torch.manual_seed(1)
    cfg = BertConfig(num_hidden_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.hidden // 64,
                     intermediate_size=4 * args.hidden, num_labels=2)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    out = {"device": args.device, "model": "bert-base" if args.layers == 12 else "custom",
           "torch": torch.__version__}

    def emit():  # the line so far, so that a run cut short still leaves what it measured
        print(json.dumps(out), flush=True)

    # Training, bf16 autocast as Trainer(bf16=True).
    if "train" in sections:
        for batch in [int(b) for b in args.train_batches.split(",") if b]:
            for fused in (False, True):
                key = "train_bf16_seq128_batch%d%s_samples_per_second" % (batch, "_fused" if fused else "")
                out[key], _ = train_rate(cfg, dev, batch, args.steps, fused)
        emit()
    if "infer" in sections or "compile" in sections:
        infer(args, cfg, dev, sections, out, emit)
    # Compiled training last: max-autotune may compile for minutes, and gpu-check.sh cuts a
    # run off at its time limit keeping what was measured before.
    if "compile" in sections:
        for mode in [m for m in args.compile_train_modes.split(",") if m]:
            for batch in [int(b) for b in args.compile_train_batches.split(",") if b]:
                rate, seconds = train_rate(cfg, dev, batch, args.steps, True, mode)
                stem = "train_bf16_seq128_batch%d_compile_%s" % (batch, mode_key(mode))
                out[stem + "_samples_per_second"] = rate
                out[stem + "_compile_seconds"] = seconds
                emit()

    peak_key = "peak_memory_gib" if sections & {"train", "infer"} else "compile_peak_memory_gib"
    out[peak_key] = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
    emit()


def infer(args, cfg, dev, sections, out, emit):
    # Inference, bf16 weights.
    torch.manual_seed(1)
    model = BertForSequenceClassification(cfg).to(dev).eval().to(torch.bfloat16)
    tok = BertTokenizerFast(vocab_file=args.vocab, do_lower_case=True)
    with open(args.sst2) as f:
        next(f)
        sentences = [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    lengths = {s: len(tok(s, truncation=True, max_length=128)["input_ids"]) for s in sentences}
    by_length = sorted(sentences, key=lambda s: lengths[s])
    fixed = torch.randint(1000, cfg.vocab_size, (128, 128), device=dev)
    one = torch.randint(1000, cfg.vocab_size, (1, 16), device=dev)

    def sst2_rate(run, order, rounds=3):
        best = 0.0
        for rnd in range(rounds):
            sync(dev)
            t0 = time.perf_counter()
            for i in range(0, len(order), 128):
                enc = tok(order[i:i + 128], padding=True, truncation=True, max_length=128, return_tensors="pt")
                run(**{k: v.to(dev) for k, v in enc.items()}).logits.float().cpu()
            sync(dev)
            if rnd > 0:
                best = max(best, len(order) / (time.perf_counter() - t0))
        return best

    def fixed_rate(run, rounds=8):
        best = 0.0
        for rnd in range(rounds):
            sync(dev)
            t0 = time.perf_counter()
            run(input_ids=fixed, attention_mask=torch.ones_like(fixed)).logits.float().cpu()
            sync(dev)
            if rnd >= 2:
                best = max(best, 128 / (time.perf_counter() - t0))
        return best

    def one_sentence_ms(run):
        times = []
        for i in range(205):
            sync(dev)
            t0 = time.perf_counter()
            run(input_ids=one, attention_mask=torch.ones_like(one)).logits.float().cpu()
            sync(dev)
            if i >= 5:
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    with torch.inference_mode():
        if "infer" in sections:
            out["infer_bf16_sst2_sentences_per_second"] = sst2_rate(model, sentences)
            out["infer_bf16_sst2_sorted_sentences_per_second"] = sst2_rate(model, by_length)
            out["infer_bf16_seq128_batch128_sentences_per_second"] = fixed_rate(model)
            out["infer_bf16_one_sentence_ms"] = one_sentence_ms(model)
            out["sst2_sentences"] = len(sentences)
            emit()
        if "compile" in sections:
            # One compiled module per shape family, as a deployment would keep them.
            for name, measure in (("seq128_batch128", fixed_rate), ("one_sentence", one_sentence_ms),
                                  ("sst2_sorted", lambda run: sst2_rate(run, by_length, rounds=2))):
                torch._dynamo.reset()
                run = torch.compile(model, mode="reduce-overhead", dynamic=name == "sst2_sorted")
                sync(dev)
                w0 = time.perf_counter()
                measure(run)  # compiles and records the graphs
                sync(dev)
                out["infer_bf16_%s_compile_reduce_overhead_compile_seconds" % name] = time.perf_counter() - w0
                value = measure(run)
                key = {"seq128_batch128": "infer_bf16_seq128_batch128_compile_reduce_overhead_sentences_per_second",
                       "one_sentence": "infer_bf16_one_sentence_compile_reduce_overhead_ms",
                       "sst2_sorted": "infer_bf16_sst2_sorted_compile_reduce_overhead_sentences_per_second"}[name]
                out[key] = value
                emit()


if __name__ == "__main__":
    main()
