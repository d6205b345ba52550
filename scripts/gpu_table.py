#!/usr/bin/env python3
"""The table of scripts/gpu-check.sh: Berth (bench/gpu_bench, and bench/engine_bench for one
sentence) beside Hugging Face eager and Hugging Face + torch.compile (bench/hf_baseline.py), from
one run on one card: each row's ratios against both peers, its TFLOP/s and share of the bf16
matrix-product rate gpu_bench measured in the same run, and issue #38's target. With a
"before" file (gpu_bench of an earlier commit, the same run), a "before" column.

usage: scripts/gpu_table.py BERTH.json HF.json [--before FILE] [--engine FILE ...]
       (each file: the program's output; its last JSON line is read)
"""
import json
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            lines = [line for line in f.read().strip().splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except OSError:
        return {}


def best(*xs):
    return max([x for x in xs if isinstance(x, (int, float))], default=None)


def num(x, fmt="%.0f"):
    return fmt % x if isinstance(x, (int, float)) else "-"


def main():
    argv = sys.argv[1:]
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    b, h = load(argv[0]), load(argv[1])
    before, engines = {}, []
    rest = argv[2:]
    while rest:
        if rest[0] == "--before" and len(rest) > 1:
            before, rest = load(rest[1]), rest[2:]
        elif rest[0] == "--engine" and len(rest) > 1:
            engines.append(load(rest[1]))
            rest = rest[2:]
        else:  # an older caller's third argument: the before file
            before, rest = load(rest[0]), rest[1:]
    peak = b.get("matmul_bf16_tflops")
    train_flops = b.get("train_flops_per_sample_seq128")
    fwd_flops = b.get("forward_flops_per_sentence_seq128")
    sst2_flops = b.get("sst2_forward_flops_per_sentence")
    modes = ("default", "max_autotune_no_cudagraphs")

    def train(batch, target):
        k = "train_bf16_seq128_batch%d_samples_per_second" % batch
        eager = best(h.get(k), h.get("train_bf16_seq128_batch%d_fused_samples_per_second" % batch))
        comp = best(*[h.get("train_bf16_seq128_batch%d_compile_%s_samples_per_second" % (batch, m))
                      for m in modes])
        return ("train, batch %d (samples/s)" % batch, b.get(k), before.get(k), eager, comp, train_flops, target)

    one_ms = [e.get("batch1_engine_ms") for e in engines if isinstance(e.get("batch1_engine_ms"), (int, float))]
    rows = [train(256, ">=1.3x, >=1.1x, >=45%"), train(32, ">=1.5x, >=1.2x"), train(128, ""),
            ("inference, fixed 128 x 128 (sentences/s)", b.get("infer_bf16_seq128_batch128_sentences_per_second"),
             before.get("infer_bf16_seq128_batch128_sentences_per_second"),
             h.get("infer_bf16_seq128_batch128_sentences_per_second"),
             h.get("infer_bf16_seq128_batch128_compile_reduce_overhead_sentences_per_second"), fwd_flops,
             ">=1.5x, >=1.1x, >=55%"),
            ("SST-2 through the engine vs HF sorted", b.get("infer_bf16_sst2_sentences_per_second"),
             before.get("infer_bf16_sst2_sentences_per_second"), h.get("infer_bf16_sst2_sorted_sentences_per_second"),
             h.get("infer_bf16_sst2_sorted_compile_reduce_overhead_sentences_per_second"), sst2_flops, ">=5x, >=2x"),
            ("SST-2, the model alone, sorted chunks of 128", b.get("infer_bf16_sst2_model_sorted_sentences_per_second"),
             None, h.get("infer_bf16_sst2_sorted_sentences_per_second"),
             h.get("infer_bf16_sst2_sorted_compile_reduce_overhead_sentences_per_second"), sst2_flops, "")]

    print("card bf16 matmul (8192^3, measured in this run): %s TFLOP/s; Hugging Face: torch %s"
          % (num(peak), h.get("torch", "?")))
    print("%-44s %8s %8s %8s %8s %7s %7s %7s %6s %22s" % ("", "Berth", "before", "HF eager", "HF comp",
                                                          "x eager", "x comp", "TFLOP/s", "%peak", "target"))
    for name, berth, was, eager, comp, flops, target in rows:
        r_eager = berth / eager if isinstance(berth, (int, float)) and eager else None
        r_comp = berth / comp if isinstance(berth, (int, float)) and comp else None
        value = berth if isinstance(berth, (int, float)) else best(eager, comp)
        tflops = value * flops / 1e12 if isinstance(value, (int, float)) and flops else None
        share = 100 * tflops / peak if tflops and peak else None
        print("%-44s %8s %8s %8s %8s %7s %7s %7s %6s %22s" % (
            name, num(berth), num(was), num(eager), num(comp), num(r_eager, "%.2fx"), num(r_comp, "%.2fx"),
            num(tflops, "%.1f"), num(share, "%.1f"), target))
    eng = statistics.median(one_ms) if one_ms else None
    print("%-44s %8s %8s %8s %8s %7s %7s %7s %6s %22s" % (
        "one 16-token sentence, median of 200 (ms)", num(eng, "%.3f"), "-",
        num(h.get("infer_bf16_one_sentence_ms"), "%.3f"),
        num(h.get("infer_bf16_one_sentence_compile_reduce_overhead_ms"), "%.3f"), "", "", "", "", "<= 1 ms"))
    if len(one_ms) > 1:
        print("  (engine runs: %s ms)" % ", ".join("%.3f" % x for x in one_ms))
    print("%-44s %8s %8s %8s" % ("peak memory (GiB)", num(b.get("peak_memory_gib"), "%.1f"),
                                 num(before.get("peak_memory_gib"), "%.1f"), num(h.get("peak_memory_gib"), "%.1f")))
    comp_s = {k: v for k, v in h.items() if k.endswith("_compile_seconds")}
    if comp_s:
        print("compile time, apart from the throughputs (s): " +
              ", ".join("%s %.0f" % (k.replace("_compile_seconds", ""), v) for k, v in sorted(comp_s.items())))
    print("(HF eager training: the faster of foreach and fused AdamW; HF compiled training: the faster of modes "
          "default and max-autotune-no-cudagraphs, fused AdamW; compiled inference: reduce-overhead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
