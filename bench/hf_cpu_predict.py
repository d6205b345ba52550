#!/usr/bin/env python3
"""Hugging Face's naive eager loop, the peer of `berth predict` in bench/engine_bench: the model
directory engine_bench saved (the same weights, the same tokenizer files), loaded with
AutoModelForSequenceClassification, in fixed batches of 32 lines in input order, each padded to
its longest line (what a plain loop or a pipeline does), fp32, torch.inference_mode, on the CPU.
Tokenizing is included, loading is not (the compute-only figure the issue compares against).

usage: bench/hf_cpu_predict.py --model DIR --input FILE [--batch-size 32] [--max-length 128]
                               [--threads N] [--rounds 2]
Prints one JSON line: {"hf_naive_sentences_per_second": ..., "sentences": ..., "torch": ...}.
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, help="one sentence per line")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=2, help="the best round counts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    with open(args.input, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    best = 0.0
    with torch.inference_mode():
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            for i in range(0, len(lines), args.batch_size):
                enc = tok(lines[i:i + args.batch_size], padding=True, truncation=True,
                          max_length=args.max_length, return_tensors="pt")
                model(**enc).logits.softmax(-1).tolist()
            best = max(best, len(lines) / (time.perf_counter() - t0))
    print(json.dumps({"hf_naive_sentences_per_second": best, "sentences": len(lines),
                      "threads": args.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
