#!/usr/bin/env python3
"""`--label-smoothing` and `--class-weights` reach the loss Berth trains on, computed as the
reference computes it: one `berth finetune` update on the first 8 rows of the training-trace
fixture (bert-tiny-train, dropout 0, no shuffle, one batch), whose logged loss is the loss of
that batch, against the pinned transformers on the same model and batch:

  - label smoothing 0.3: the Trainer's own LabelSmoother (label_smoothing_factor=0.3);
  - class weights: torch's weighted cross-entropy (nn.CrossEntropyLoss(weight=...)), what
    `--class-weights` documents; the Trainer has no class weights;
  - both together: cross_entropy(weight=..., label_smoothing=0.3);
  - neither: the plain mean cross-entropy. Each option moves the reference loss by more than
    twice the tolerance, so a Berth that ignored it would fail its comparison. (The tiny model
    predicts near 50/50, so the options move the loss by 1e-4 to 1e-2 only.)

usage: loss_options_test.py BERTH FIXTURES_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from transformers import AutoTokenizer, BertForSequenceClassification
from transformers.trainer_pt_utils import LabelSmoother

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, failures  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# The golden logits agree with transformers within 1e-5 (fixtures' meta.json); cross-entropy's
# derivative with respect to each logit is at most 1 in size, so over 2 logits a loss moves by
# at most ~2e-5; 5e-5 leaves room for the mean over 8 rows being summed in another order.
TOL = 5e-5


def main():
    berth, fixtures = sys.argv[1], sys.argv[2]
    model_dir = os.path.join(fixtures, "bert-tiny-train")
    rows = json.load(open(os.path.join(HERE, "inputs.json")))["bert-tiny-train"]["train"][:8]
    config = json.load(open(os.path.join(model_dir, "config.json")))
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    work = tempfile.mkdtemp(prefix="berth-loss-")
    try:
        data = os.path.join(work, "train.jsonl")
        with open(data, "w") as f:
            for r in rows:
                f.write(json.dumps({"text": r["text"], "label": names[r["label"]]}) + "\n")

        def berth_loss(extra):
            out, log = os.path.join(work, "out"), os.path.join(work, "log.jsonl")
            shutil.rmtree(out, ignore_errors=True)
            p = subprocess.run([berth, "finetune", "--base-model", model_dir, "--train", data, "--output", out,
                                "--max-steps", "1", "--batch-size", "8", "--no-shuffle", "--max-length", "64",
                                "--log-jsonl", log, "--json"] + extra, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit("berth finetune %s failed: %s" % (extra, p.stderr[-1000:]))
            return json.loads(open(log).readline())["loss"]

        tok = AutoTokenizer.from_pretrained(model_dir)
        model = BertForSequenceClassification.from_pretrained(model_dir).eval()  # dropout is 0 anyway
        enc = tok([r["text"] for r in rows], truncation=True, max_length=64, padding=True, return_tensors="pt")
        labels = torch.tensor([r["label"] for r in rows])
        with torch.no_grad():
            logits = model(**enc).logits
        weights = torch.tensor([1.0, 3.0])
        ce = torch.nn.functional.cross_entropy
        cases = [
            ("neither", [], ce(logits, labels).item()),
            ("label smoothing 0.3 (the Trainer's LabelSmoother)", ["--label-smoothing", "0.3"],
             LabelSmoother(epsilon=0.3)({"logits": logits}, labels).item()),
            ("class weights 1,3", ["--class-weights", "1,3"], ce(logits, labels, weight=weights).item()),
            ("both", ["--label-smoothing", "0.3", "--class-weights", "1,3"],
             ce(logits, labels, weight=weights, label_smoothing=0.3).item()),
        ]
        for name, extra, want in cases:
            got = berth_loss(extra)
            check(abs(got - want) <= TOL, "%s: Berth %.7f, reference %.7f" % (name, got, want))
            if extra:
                check(abs(want - cases[0][2]) > 2 * TOL, "%s moves the reference loss by %.2g (> 2 x %g)"
                      % (name, abs(want - cases[0][2]), TOL))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("loss options: all checks passed" if not failures else "loss options: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
