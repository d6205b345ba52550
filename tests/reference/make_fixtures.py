#!/usr/bin/env python3
"""Regenerates every golden fixture under tests/data/fixtures/*/expected with the pinned Hugging
Face reference (scripts/requirements.txt: transformers, tokenizers, torch), or checks that what it
generates agrees with the committed files.

Inputs: the model directories in tests/data/fixtures (config.json, model.safetensors, tokenizer
files: the models under test, not regenerated here) and tests/reference/inputs.json (the texts,
pairs, multi-label targets, and the training recipe and rows of the trace). Outputs, per model:

  expected/meta.json            max lengths, the reference versions, the logits tolerance
  expected/tokens.jsonl         input_ids, token_type_ids, attention_mask, tokens (truncation on)
  expected/tokens_cased.jsonl   the same with do_lower_case=False (BERT fixtures)
  expected/tokens_prefix_space.jsonl  the same with add_prefix_space=True (byte-level BPE)
  expected/pairs_max24.jsonl    text + text_pair, longest_first truncation to pairs_max_length
  expected/logits.jsonl         logits (batch of one), probabilities, label; the first
                                `padded_batch` texts also as one padded batch
  expected/multilabel_loss.jsonl  BCE-with-logits per example (multi-label fixture)
  bert-tiny-train/expected/train_trace.json  a fine-tuning run, update by update

usage: make_fixtures.py [--fixtures DIR] [--out DIR] [--check]
  --out DIR   write the expected/ trees under DIR instead of over the fixtures
  --check     generate into a temporary directory and compare with the committed files: tokens
              exactly, logits and probabilities within meta.json's tolerance (1e-5), the trace
              within 1e-4 relative; exit 1 on any difference
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import tokenizers
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = "transformers %s, tokenizers %s, torch %s, CPU fp32" % (
    transformers.__version__, tokenizers.__version__, torch.__version__.split("+")[0])


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def encode_rows(tok, texts, max_length, pairs=False):
    rows = []
    for t in texts:
        e = tok(t[0], t[1], truncation="longest_first", max_length=max_length) if pairs else \
            tok(t, truncation=True, max_length=max_length)
        r = {"text": t[0], "text_pair": t[1]} if pairs else {"text": t}
        r.update({"input_ids": e["input_ids"],
                  "token_type_ids": e.get("token_type_ids", [0] * len(e["input_ids"])),
                  "attention_mask": e["attention_mask"],
                  "tokens": tok.convert_ids_to_tokens(e["input_ids"])})
        rows.append(r)
    return rows


def classifier_outputs(model_dir, spec, out):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    multi = model.config.problem_type == "multi_label_classification"
    id2label = model.config.id2label
    texts, n = spec["texts"], spec["max_length"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"max_length": n, "pairs_max_length": spec["pairs_max_length"], "reference": REFERENCE,
                   "tolerance_logits_abs": 1e-05}, f, indent=1)
    write_jsonl(os.path.join(out, "tokens.jsonl"), encode_rows(tok, texts, n))
    if spec["cased"]:
        cased = AutoTokenizer.from_pretrained(model_dir, do_lower_case=False)
        write_jsonl(os.path.join(out, "tokens_cased.jsonl"), encode_rows(cased, texts, n))
    if spec.get("prefix_space"):
        spaced = AutoTokenizer.from_pretrained(model_dir, add_prefix_space=True)
        write_jsonl(os.path.join(out, "tokens_prefix_space.jsonl"), encode_rows(spaced, texts, n))
    write_jsonl(os.path.join(out, "pairs_max24.jsonl"),
                encode_rows(tok, spec["pairs"], spec["pairs_max_length"], pairs=True))
    rows, losses = [], []
    with torch.no_grad():
        k = spec["padded_batch"]
        batch = tok(texts[:k], truncation=True, max_length=n, padding=True, return_tensors="pt")
        padded = model(**batch).logits
        for i, t in enumerate(texts):
            logits = model(**tok(t, truncation=True, max_length=n, return_tensors="pt")).logits[0]
            probs = torch.sigmoid(logits) if multi else torch.softmax(logits, -1)
            r = {"text": t, "logits": logits.tolist(), "probabilities": probs.tolist(),
                 "label": id2label[int(logits.argmax())]}
            if i < k:
                r["logits_padded_batch"] = padded[i].tolist()
            rows.append(r)
            if "multilabel_labels" in spec:
                y = torch.tensor(spec["multilabel_labels"][i])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
                losses.append({"text": t, "labels": spec["multilabel_labels"][i], "loss": loss.item()})
    write_jsonl(os.path.join(out, "logits.jsonl"), rows)
    if losses:
        write_jsonl(os.path.join(out, "multilabel_loss.jsonl"), losses)


def train_trace(model_dir, spec, out):
    """A fine-tuning run as the Trainer's maths does it: AdamW with decoupled decay (none on
    biases and LayerNorm weights), linear warmup then decay, clipping, sequential batches padded
    to the longest."""
    r = spec["recipe"]
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.train()
    no_decay = [n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    groups = [{"params": [p for n, p in model.named_parameters() if n not in no_decay],
               "weight_decay": r["weight_decay"]},
              {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=r["lr"], betas=(0.9, 0.999), eps=1e-8)
    sched = transformers.get_linear_schedule_with_warmup(opt, r["warmup_updates"], r["total_updates"])
    rows = spec["train"]
    steps, update = [], 0
    for epoch in range(r["epochs"]):
        for b, i in enumerate(range(0, len(rows), r["batch_size"])):
            chunk = rows[i:i + r["batch_size"]]
            enc = tok([x["text"] for x in chunk], truncation=True, max_length=r["max_length"], padding=True,
                      return_tensors="pt")
            labels = torch.tensor([x["label"] for x in chunk])
            loss = torch.nn.functional.cross_entropy(model(**enc).logits, labels)
            loss.backward()
            step = {"epoch": epoch, "batch": b, "micro_loss": loss.item(), "padded_len": enc["input_ids"].shape[1]}
            update += 1
            step["update"] = update
            step["lr"] = sched.get_last_lr()[0]
            step["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip_norm"]).item()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            steps.append(step)
    model.eval()
    with torch.no_grad():
        enc = tok(spec["eval_texts"], truncation=True, max_length=r["max_length"], padding=True, return_tensors="pt")
        final = model(**enc).logits.tolist()
    params = dict(model.named_parameters())
    checks = {n: {"sum": params[n].detach().double().sum().item(), "l2": params[n].detach().double().norm().item()}
              for n in spec["param_checks"]}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "train_trace.json"), "w") as f:
        json.dump({"reference": REFERENCE, "recipe": r, "train": rows, "steps": steps,
                   "eval_texts": spec["eval_texts"], "final_logits": final, "final_param_checks": checks},
                  f, indent=1, ensure_ascii=False)


def generate(fixtures, inputs, root):
    for name, spec in inputs.items():
        out = os.path.join(root, name, "expected")
        if name == "bert-tiny-train":
            train_trace(os.path.join(fixtures, name), spec, out)
        else:
            classifier_outputs(os.path.join(fixtures, name), spec, out)
        print("generated", os.path.relpath(out, root), flush=True)


# --- comparison (--check) ---------------------------------------------------------------------

class Diff:
    def __init__(self):
        self.problems = []
        self.worst = {}

    def fail(self, where, what):
        self.problems.append("%s: %s" % (where, what))

    def close(self, where, kind, a, b, tol, rel=False):
        if isinstance(a, list):
            if not isinstance(b, list) or len(a) != len(b):
                return self.fail(where, "%s shape differs" % kind)
            for x, y in zip(a, b):
                self.close(where, kind, x, y, tol, rel)
            return
        d = abs(a - b) / max(abs(b), 1e-12) if rel else abs(a - b)
        self.worst[kind] = max(self.worst.get(kind, 0.0), d)
        if not d <= tol:
            self.fail(where, "%s %r vs %r (%s %.3g > %.3g)" % (kind, a, b, "rel" if rel else "abs", d, tol))


def compare_jsonl(diff, name, new, old, tol):
    a = [json.loads(l) for l in open(new, encoding="utf-8")]
    b = [json.loads(l) for l in open(old, encoding="utf-8")]
    if len(a) != len(b):
        return diff.fail(name, "%d rows vs %d" % (len(a), len(b)))
    for i, (x, y) in enumerate(zip(a, b)):
        where = "%s:%d" % (name, i + 1)
        if set(x) != set(y):
            diff.fail(where, "fields %s vs %s" % (sorted(x), sorted(y)))
            continue
        for k in x:
            if k in ("logits", "probabilities", "logits_padded_batch", "loss"):
                diff.close(where, k, x[k], y[k], tol)
            elif x[k] != y[k]:
                diff.fail(where, "%s differs: %r vs %r" % (k, x[k], y[k]))


def compare(generated, fixtures, inputs):
    diff = Diff()
    for name in inputs:
        new, old = os.path.join(generated, name, "expected"), os.path.join(fixtures, name, "expected")
        if name == "bert-tiny-train":
            a = json.load(open(os.path.join(new, "train_trace.json")))
            b = json.load(open(os.path.join(old, "train_trace.json")))
            if len(a["steps"]) != len(b["steps"]):
                diff.fail(name, "%d steps vs %d" % (len(a["steps"]), len(b["steps"])))
            for i, (x, y) in enumerate(zip(a["steps"], b["steps"])):
                for k in ("epoch", "batch", "padded_len", "update"):
                    if x.get(k) != y.get(k):
                        diff.fail("%s step %d" % (name, i), "%s %r vs %r" % (k, x.get(k), y.get(k)))
                for k in ("micro_loss", "lr", "grad_norm"):
                    diff.close("%s step %d" % (name, i), k, x[k], y[k], 1e-4, rel=True)
            diff.close(name, "final_logits", a["final_logits"], b["final_logits"], 1e-4)
            for p, c in b["final_param_checks"].items():
                # As trainer_golden_test: within 1e-6 absolute (sums near zero), else 1e-4 relative.
                x = a["final_param_checks"][p]["sum"]
                if abs(x - c["sum"]) >= 1e-6:
                    diff.close(name + " " + p, "param sum", x, c["sum"], 1e-4, rel=True)
                diff.close(name + " " + p, "param l2", a["final_param_checks"][p]["l2"], c["l2"], 1e-4, rel=True)
            continue
        tol = json.load(open(os.path.join(old, "meta.json")))["tolerance_logits_abs"]
        for f in sorted(os.listdir(new)):
            if f.endswith(".jsonl"):
                compare_jsonl(diff, "%s/%s" % (name, f), os.path.join(new, f), os.path.join(old, f), tol)
    return diff


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=os.path.join(HERE, "..", "data", "fixtures"))
    ap.add_argument("--inputs", default=os.path.join(HERE, "inputs.json"))
    ap.add_argument("--out", help="write here instead of over the fixtures")
    ap.add_argument("--check", action="store_true", help="compare with the committed fixtures instead of writing")
    a = ap.parse_args()
    torch.set_num_threads(1)  # one summation order, whatever the machine's core count
    inputs = json.load(open(a.inputs, encoding="utf-8"))
    print("reference:", REFERENCE)
    if not a.check:
        generate(a.fixtures, inputs, a.out or a.fixtures)
        return 0
    tmp = tempfile.mkdtemp(prefix="berth-fixtures-")
    try:
        generate(a.fixtures, inputs, tmp)
        diff = compare(tmp, a.fixtures, inputs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for k, v in sorted(diff.worst.items()):
        print("worst %-20s %.3g" % (k, v))
    for p in diff.problems[:40]:
        print("FAIL", p)
    print("%d differences" % len(diff.problems))
    return 1 if diff.problems else 0


if __name__ == "__main__":
    sys.exit(main())
