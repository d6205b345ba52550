#!/usr/bin/env python3
"""The table of scripts/gpu-check.sh: Berth (bench/gpu_bench) and Hugging Face
(bench/hf_baseline.py) from one run on one card, each row's TFLOP/s and share of the bf16
matrix-product rate gpu_bench measured in the same run, the ratio against the faster Hugging
Face figure, and issue #18's target. With a third file (gpu_bench of an earlier commit, the
same run), a "before" column.

usage: scripts/gpu_table.py BERTH.json HF.json [BEFORE.json]   (each: the program's last line)
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            lines = [line for line in f.read().strip().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except OSError:
        return {}


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) > 1 else 2
    b, h = load(sys.argv[1]), load(sys.argv[2])
    before = load(sys.argv[3]) if len(sys.argv) > 3 else {}
    peak = b.get("matmul_bf16_tflops")
    train_flops = b.get("train_flops_per_sample_seq128")
    fwd_flops = b.get("forward_flops_per_sentence_seq128")
    sst2_flops = b.get("sst2_forward_flops_per_sentence")

    def train(batch):
        k = "train_bf16_seq128_batch%d_samples_per_second" % batch
        hf = [h.get(k), h.get("train_bf16_seq128_batch%d_fused_samples_per_second" % batch)]
        return ("train, batch %d (samples/s)" % batch, b.get(k), hf, train_flops, before.get(k))

    rows = [train(32), train(128), train(256),
            ("inference, fixed 128 x 128 (sentences/s)", b.get("infer_bf16_seq128_batch128_sentences_per_second"),
             [h.get("infer_bf16_seq128_batch128_sentences_per_second")], fwd_flops,
             before.get("infer_bf16_seq128_batch128_sentences_per_second")),
            ("SST-2 through the engine vs HF length-sorted", b.get("infer_bf16_sst2_sentences_per_second"),
             [h.get("infer_bf16_sst2_sorted_sentences_per_second")], sst2_flops,
             before.get("infer_bf16_sst2_sentences_per_second")),
            ("SST-2, the model alone, sorted chunks of 128", b.get("infer_bf16_sst2_model_sorted_sentences_per_second"),
             [h.get("infer_bf16_sst2_sorted_sentences_per_second")], sst2_flops, None),
            ("SST-2, HF in file order (for reference)", None, [h.get("infer_bf16_sst2_sentences_per_second")],
             sst2_flops, None)]
    targets = {"train, batch 256 (samples/s)": ">= 1.25x, >= 42%", "train, batch 32 (samples/s)": ">= 1.5x",
               "inference, fixed 128 x 128 (sentences/s)": ">= 1.5x",
               "SST-2 through the engine vs HF length-sorted": ">= 3x"}

    def num(x, fmt="%.0f"):
        return fmt % x if isinstance(x, (int, float)) else "-"

    print("card bf16 matmul (8192^3, measured in this run): %s TFLOP/s; Hugging Face: torch %s"
          % (num(peak), h.get("torch", "?")))
    head = "%-46s %9s %9s %13s %8s %7s %7s %17s" % ("", "Berth", "before", "HF", "ratio", "TFLOP/s", "% peak", "target")
    print(head)
    for name, berth, hf, flops, was in rows:
        hf_best = max([x for x in hf if isinstance(x, (int, float))], default=None)
        ratio = berth / hf_best if isinstance(berth, (int, float)) and hf_best else None
        value = berth if isinstance(berth, (int, float)) else hf_best
        tflops = value * flops / 1e12 if isinstance(value, (int, float)) and flops else None
        share = 100 * tflops / peak if tflops and peak else None
        hf_text = "/".join(num(x) for x in hf)
        print("%-46s %9s %9s %13s %8s %7s %7s %17s" % (name, num(berth), num(was), hf_text,
                                                     num(ratio, "%.2fx"), num(tflops, "%.1f"),
                                                     num(share, "%.1f"), targets.get(name, "")))
    print("%-46s %9s %9s %9s" % ("peak memory (GiB)", num(b.get("peak_memory_gib"), "%.1f"),
                                 num(before.get("peak_memory_gib"), "%.1f"), num(h.get("peak_memory_gib"), "%.1f")))
    print("(training HF: foreach/fused AdamW, the ratio against the faster; TFLOP/s of the Berth figure, or of HF's"
          " where Berth has none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
