#!/usr/bin/env python3
"""Hugging Face baseline for bench/gpu_bench on the same GPU, with the machine's own torch and
transformers: BertForSequenceClassification of bert-base shape (random weights; the same work
as pretrained ones), seq 128.

- training at batch 32, 128 and 256: what the Trainer does per step with bf16=True — autocast
  to bf16 with fp32 master weights, loss.backward(), clip_grad_norm_(1.0), torch's AdamW, a
  linear schedule, zero_grad(set_to_none=True), the loss read back — samples/s after warm-up,
  once with AdamW's foreach implementation (torch's default) and once with fused=True (the
  Trainer's default optim, "adamw_torch_fused");
- inference, eager, bf16 weights: SST-2 validation in batches of 128 in file order and
  length-sorted, each padded to its longest sentence (what a plain loop or a pipeline does), and
  fixed 128 x 128 batches;
- the peak of torch.cuda.max_memory_allocated.

usage: bench/hf_baseline.py [--device cuda] [--steps 20] [--sst2 FILE] [--vocab FILE]
                            [--train-batches 32,128,256]
Prints one JSON line with the same keys as gpu_bench (the fused-AdamW training figures under
train_bf16_seq128_batchN_fused_samples_per_second).
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
    ap.add_argument("--train-batches", default="32,128,256")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(1)
    cfg = BertConfig(num_hidden_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.hidden // 64,
                     intermediate_size=4 * args.hidden, num_labels=2)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    out = {"device": args.device, "model": "bert-base" if args.layers == 12 else "custom"}
    # Training, bf16 autocast as Trainer(bf16=True).
    for batch in [int(b) for b in args.train_batches.split(",") if b]:
        for fused in (False, True):
            torch.manual_seed(1)
            model = BertForSequenceClassification(cfg).to(dev).train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True if fused else None)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
            ids = torch.randint(1000, cfg.vocab_size, (batch, 128), device=dev)
            mask = torch.ones_like(ids)
            labels = torch.randint(0, 2, (batch,), device=dev)
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
            key = "train_bf16_seq128_batch%d%s_samples_per_second" % (batch, "_fused" if fused else "")
            out[key] = batch * args.steps / (time.perf_counter() - t0)
            del model, opt, sched
    torch.manual_seed(1)
    model = BertForSequenceClassification(cfg).to(dev)

    # Inference, eager, bf16 weights.
    model = model.eval().to(torch.bfloat16)
    tok = BertTokenizerFast(vocab_file=args.vocab, do_lower_case=True)
    with open(args.sst2) as f:
        next(f)
        sentences = [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    def sst2_rate(order):
        best = 0.0
        for rnd in range(3):
            sync(args.device)
            t0 = time.perf_counter()
            for i in range(0, len(order), 128):
                enc = tok(order[i:i + 128], padding=True, truncation=True, max_length=128, return_tensors="pt")
                model(**{k: v.to(dev) for k, v in enc.items()}).logits.float().cpu()
            sync(args.device)
            if rnd > 0:
                best = max(best, len(order) / (time.perf_counter() - t0))
        return best

    with torch.inference_mode():
        best = sst2_rate(sentences)
        lengths = {s: len(tok(s, truncation=True, max_length=128)["input_ids"]) for s in sentences}
        best_sorted = sst2_rate(sorted(sentences, key=lambda s: lengths[s]))
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
    out.update({"infer_bf16_sst2_sentences_per_second": best,
                "infer_bf16_sst2_sorted_sentences_per_second": best_sorted, "sst2_sentences": len(sentences),
                "infer_bf16_seq128_batch128_sentences_per_second": fixed_best,
                "peak_memory_gib": peak, "torch": torch.__version__})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
