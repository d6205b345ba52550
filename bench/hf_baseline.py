#!/usr/bin/env python3
"""Hugging Face baseline for bench/gpu_bench on the same GPU, with the machine's own torch and
transformers: BertForSequenceClassification of bert-base shape (random weights; the same work
as pretrained ones), seq 128, batch 32.

- training: what the Trainer does per step with bf16=True — autocast to bf16 with fp32 master
  weights, loss.backward(), clip_grad_norm_(1.0), AdamW (torch's, as the Trainer's default
  "adamw_torch"), a linear schedule, zero_grad(set_to_none=True) — samples/s after warm-up;
- inference, eager, bf16 weights: SST-2 validation in batches of 128 in file order, each padded
  to its longest sentence (what a plain loop or a pipeline does), and fixed 128 x 128 batches;
- the peak of torch.cuda.max_memory_allocated.

usage: bench/hf_baseline.py [--device cuda] [--steps 20] [--sst2 FILE] [--vocab FILE]
Prints one JSON line with the same keys as gpu_bench.
"""
import argparse
import json
import os
import time

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--sst2", default=os.path.join(here, "..", "data", "sst2-sample", "validation.tsv"))
    ap.add_argument("--vocab", default=os.path.join(here, "..", "data", "bert-base-uncased-vocab.txt"))
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(1)
    cfg = BertConfig(num_hidden_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.hidden // 64,
                     intermediate_size=4 * args.hidden, num_labels=2)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    # Training, bf16 autocast as Trainer(bf16=True).
    model = BertForSequenceClassification(cfg).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ids = torch.randint(1000, cfg.vocab_size, (32, 128), device=dev)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (32,), device=dev)
    warmup = 3
    for step in range(args.steps + warmup):
        if step == warmup:
            sync(args.device)
            t0 = time.perf_counter()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # the Trainer logs the loss; this is also Berth's one sync per update
    sync(args.device)
    train_sps = 32 * args.steps / (time.perf_counter() - t0)
    del opt, sched

    # Inference, eager, bf16 weights.
    model = model.eval().to(torch.bfloat16)
    tok = BertTokenizerFast(vocab_file=args.vocab, do_lower_case=True)
    with open(args.sst2) as f:
        next(f)
        sentences = [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    best = 0.0
    with torch.inference_mode():
        for rnd in range(3):
            sync(args.device)
            t0 = time.perf_counter()
            for i in range(0, len(sentences), 128):
                enc = tok(sentences[i:i + 128], padding=True, truncation=True, max_length=128, return_tensors="pt")
                logits = model(**{k: v.to(dev) for k, v in enc.items()}).logits.float().cpu()
            sync(args.device)
            if rnd > 0:
                best = max(best, len(sentences) / (time.perf_counter() - t0))
        fixed = torch.randint(1000, cfg.vocab_size, (128, 128), device=dev)
        fixed_best = 0.0
        for rnd in range(8):
            sync(args.device)
            t0 = time.perf_counter()
            model(input_ids=fixed, attention_mask=torch.ones_like(fixed)).logits.float().cpu()
            sync(args.device)
            if rnd >= 2:
                fixed_best = max(fixed_best, 128 / (time.perf_counter() - t0))
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
    print(json.dumps({"device": args.device, "model": "bert-base" if args.layers == 12 else "custom",
                      "train_bf16_seq128_batch32_samples_per_second": train_sps,
                      "infer_bf16_sst2_sentences_per_second": best, "sst2_sentences": len(sentences),
                      "infer_bf16_seq128_batch128_sentences_per_second": fixed_best,
                      "peak_memory_gib": peak, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
