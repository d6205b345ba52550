#!/usr/bin/env python3
"""Fine-tuning a cross-encoder (one logit on sentence pairs), offline and through the service.

The data is real: SST-2 sentences (data/sst2-sample) paired with the hypotheses "it is a good
movie" and "it is a bad movie", scored 1 when the hypothesis holds and 0 when it does not.
The base is a generated cross-encoder: the bert-tiny fixture's encoder with a one-logit head
that transformers draws (seed 0), so Berth keeps that head and both sides start from the same
weights.

1. The loss and the metrics, against transformers and scipy. `berth finetune --score bce`
   (and `--score mse`) with a learning rate of 1e-15 for one update evaluates the base model
   itself: AdamW's first step moves each weight by the learning rate, and 1e-15 is below half
   an ulp of every weight larger than ~1e-8 in fp32, so the weights evaluated are the base's.
   The evaluation loss equals torch's BCEWithLogitsLoss (MSELoss) on transformers' logits, and
   Pearson and Spearman equal scipy's on its scores (sigmoid for bce, the logit for mse), each
   within 1e-5: fp32 on both sides, Berth's sums in another order differ by a few ulps (~1e-7)
   of a logit of size ~1. Spearman compares ranks, which agree when no two reference scores lie
   within 1e-6 of each other; the test checks that first. `berth eval` of the saved model, through
   the inference engine, reports the same loss, Pearson and Spearman within the same 1e-5.
2. Training works: three epochs of bce lower the validation loss below the base's.
3. The trained directory is a sentence-transformers CrossEncoder: CrossEncoder.predict on it
   equals the scores of Berth's POST /rerank on the same model within 1e-5 (as rerank_reference).
4. The service: `berth train --score bce` on a server fine-tunes "my-cross-encoder" from an
   uploaded file, `berth models` shows its Pearson correlation, and the README's `curl .../rerank`
   line runs as written against it.
5. Bad input: a label that is not a number, and a bce label outside [0, 1], each refused with
   the file and line, by `berth finetune` and by `berth eval`.

usage: cross_encoder_finetune_test.py berth-server berth FIXTURES_DIR DATA_DIR README
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np
import torch
from scipy import stats
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer, BertForSequenceClassification

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, failures, start_server  # noqa: E402

TOL = 1e-5
MAX_LENGTH = 64
HYPOTHESES = ("it is a good movie", "it is a bad movie")


def pairs_file(path, sst2, count):
    """SST-2 sentences as scored pairs; returns (sentences, hypotheses, labels)."""
    rows = [l.split("\t") for l in open(sst2, encoding="utf-8").read().splitlines()[1:count + 1]]
    a, b, y = [], [], []
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\thypothesis\tlabel\n")
        for sentence, label in rows:
            for h, holds in zip(HYPOTHESES, (label == "1", label == "0")):
                f.write("%s\t%s\t%d\n" % (sentence.strip(), h, holds))
                a.append(sentence.strip())
                b.append(h)
                y.append(float(holds))
    return a, b, np.array(y)


def finetune(cli, base, train, val, out, *extra):
    p = subprocess.run([cli, "finetune", "--base-model", base, "--train", train, "--validation", val,
                        "--text-pair-column", "hypothesis", "--max-length", str(MAX_LENGTH),
                        "--batch-size", "16", "--output", out, "--json"] + list(extra),
                       capture_output=True, text=True, timeout=600)
    return p


def evals(out):
    return json.load(open(os.path.join(out, "metrics.json")))["evals"]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def main():
    server_bin, cli, fixtures, data, readme = sys.argv[1:6]
    fixtures = os.path.abspath(fixtures)
    work = tempfile.mkdtemp(prefix="berth-ce-ft-")
    server = None
    try:
        base = os.path.join(work, "ce-base")
        torch.manual_seed(0)
        src = os.path.join(fixtures, "bert-tiny-uncased")
        m = BertForSequenceClassification.from_pretrained(src, num_labels=1, ignore_mismatched_sizes=True)
        m.config.problem_type = None  # the fixture's single_label_classification needs two labels
        m.save_pretrained(base)
        tok = AutoTokenizer.from_pretrained(src)
        tok.save_pretrained(base)
        train, val = os.path.join(work, "train.tsv"), os.path.join(work, "val.tsv")
        sst2 = os.path.join(data, "sst2-sample")
        pairs_file(train, os.path.join(sst2, "train.tsv"), 200)
        va, vb, vy = pairs_file(val, os.path.join(sst2, "validation.tsv"), 50)

        # 1. The loss and metrics of the base, against transformers and scipy.
        hf = BertForSequenceClassification.from_pretrained(base).eval()
        with torch.no_grad():
            enc = tok(va, vb, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            logits = hf(**enc).logits[:, 0].double()
        target = torch.tensor(vy)
        for loss_name, want_loss, scores in [
                ("bce", torch.nn.functional.binary_cross_entropy_with_logits(logits, target).item(),
                 torch.sigmoid(logits).numpy()),
                ("mse", torch.nn.functional.mse_loss(logits, target).item(), logits.numpy())]:
            out = os.path.join(work, "eval-" + loss_name)
            p = finetune(cli, base, train, val, out, "--score", loss_name, "--max-steps", "1",
                         "--learning-rate", "1e-15", "--no-shuffle")
            check(p.returncode == 0, "finetune --score %s exits 0%s" % (loss_name, "" if p.returncode == 0 else ": " + p.stderr[-400:]))
            if p.returncode != 0:
                continue
            got = evals(out)[-1]
            gap = np.diff(np.sort(scores)).min()
            check(gap > 1e-6, "%s: no two reference scores within 1e-6 (closest %.1e), so the ranks are defined" % (loss_name, gap))
            for name, want in [("loss", want_loss), ("pearson", stats.pearsonr(vy, scores)[0]),
                               ("spearman", stats.spearmanr(vy, scores)[0])]:
                check(abs(got.get(name, float("nan")) - want) <= TOL,
                      "%s: evaluation %s %.7f, transformers/scipy %.7f" % (loss_name, name, got.get(name, float("nan")), want))
            # `berth eval` of the saved model (the engine, not the Trainer) reports the same.
            q = subprocess.run([cli, "eval", "--model", out, "--data", val, "--text-pair-column", "hypothesis",
                                "--max-length", str(MAX_LENGTH)], capture_output=True, text=True, timeout=300)
            evaluated = json.loads(q.stdout) if q.returncode == 0 else {}
            check(q.returncode == 0, "berth eval of the %s model exits 0%s" % (loss_name, "" if q.returncode == 0 else ": " + q.stderr[-300:]))
            for name, want in [("loss", want_loss), ("pearson", stats.pearsonr(vy, scores)[0]),
                               ("spearman", stats.spearmanr(vy, scores)[0])]:
                check(abs(evaluated.get(name, float("nan")) - want) <= TOL,
                      "%s: berth eval %s %.7f, transformers/scipy %.7f" % (loss_name, name, evaluated.get(name, float("nan")), want))
            config = json.load(open(os.path.join(out, "config.json")))
            check(config.get("id2label") == {"0": "LABEL_0"} and
                  config.get("problem_type") == (None if loss_name == "bce" else "regression"),
                  "%s: config.json has one label, problem_type %s" % (loss_name, config.get("problem_type")))
        base_loss = evals(os.path.join(work, "eval-bce"))[-1]["loss"] if os.path.exists(
            os.path.join(work, "eval-bce", "metrics.json")) else float("nan")

        # 2. Training lowers the validation loss.
        trained = os.path.join(work, "trained")
        p = finetune(cli, base, train, val, trained, "--score", "bce", "--epochs", "3", "--learning-rate", "1e-4")
        check(p.returncode == 0, "finetune --score bce (3 epochs) exits 0%s" % ("" if p.returncode == 0 else ": " + p.stderr[-400:]))
        if p.returncode == 0:
            losses = [e["loss"] for e in evals(trained)]
            check(min(losses) < base_loss, "validation loss %s falls below the base's %.4f" % (
                ", ".join("%.4f" % l for l in losses), base_loss))

        # 3 and 4. Served: /rerank equals CrossEncoder.predict; the service trains one too.
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--model-roots", work])
        port = open(os.path.join(work, "http-port")).read().strip()
        base_url = "http://127.0.0.1:%s" % port
        if p.returncode == 0:
            r = subprocess.run([cli, "import-model", "trained-ce", "--server", addr, "--server-dir", trained],
                               capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, "the trained cross-encoder registers" + ("" if r.returncode == 0 else ": " + r.stderr[-300:]))
            ce = CrossEncoder(trained, device="cpu")
            texts = va[:8]
            want = ce.predict([(HYPOTHESES[0], t) for t in texts], convert_to_numpy=True)
            got = post(base_url + "/models/trained-ce/rerank", {"query": HYPOTHESES[0], "texts": texts})
            by_index = {g["index"]: g["score"] for g in got}
            diff = max(abs(by_index[i] - want[i]) for i in range(len(texts)))
            check(diff <= TOL, "/rerank on the trained model equals CrossEncoder.predict (worst %.1e)" % diff)

        r = subprocess.run([cli, "train", "--server", addr, "--base-model", base, "--train", train,
                            "--text-pair-column", "hypothesis", "--score", "bce", "--name", "my-cross-encoder",
                            "--max-steps", "20", "--batch-size", "16", "--max-length", str(MAX_LENGTH),
                            "--validation-split", "0.1", "--watch", "--json"],
                           capture_output=True, text=True, timeout=600)
        final = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
        check(final.get("state") == "JOB_STATE_SUCCEEDED",
              "berth train --score bce on the server succeeds" + ("" if final else ": " + r.stderr[-400:]))
        # The watch's evaluation lines speak of a scorer's correlations, not of accuracy.
        eval_lines = [l for l in r.stderr.splitlines() if l.startswith("eval ")]
        check(all("pearson" in l and "accuracy" not in l for l in eval_lines),
              "the watch prints a scorer's evaluations with pearson and spearman (%s)" % eval_lines)
        last = final.get("progress", {}).get("last_eval", {})
        check("pearson" in last and "spearman" in last, "the job's evaluation reports pearson and spearman (%s)" % last)
        # The registered version: `berth models` shows its Pearson correlation, not an accuracy.
        q = subprocess.run([cli, "model", "my-cross-encoder", "--server", addr], capture_output=True, text=True, timeout=60)
        metrics = json.loads(q.stdout).get("metrics", {}) if q.returncode == 0 else {}
        q = subprocess.run([cli, "models", "--server", addr], capture_output=True, text=True, timeout=60)
        row = [l.split() for l in q.stdout.splitlines() if l.startswith("my-cross-encoder ")]
        check(metrics.get("scored") is True and len(row) == 1 and row[0][3:5] == ["pearson", "%.4f" % metrics.get("pearson", 0)],
              "berth models shows the scorer's Pearson correlation (%s; %s)" % (row, metrics))
        lines = [l for l in open(readme, encoding="utf-8").read().splitlines()
                 if l.startswith("curl ") and "/rerank" in l]
        check(len(lines) == 1, "the README shows one curl /rerank line")
        for line in lines:
            q = subprocess.run(["bash", "-c", line.replace("127.0.0.1:8080", "127.0.0.1:" + port) + " --fail -sS"],
                               capture_output=True, text=True, timeout=60)
            res = json.loads(q.stdout) if q.returncode == 0 else []
            check(q.returncode == 0 and sorted(x["index"] for x in res) == [0, 1] and
                  res[0]["score"] >= res[1]["score"],
                  "the README's rerank line answers both texts, best first (%s %s)" % (q.stdout.strip(), q.stderr.strip()))

        # 5. Bad labels name the file and line.
        bad = os.path.join(work, "bad.tsv")
        for body, loss_name, want in [("sentence\thypothesis\tlabel\na\tb\t0.5\nc\td\tgood\n", "mse", "bad.tsv:3: label 'good' is not a number"),
                                      ("sentence\thypothesis\tlabel\na\tb\t1.5\n", "bce", "bad.tsv:2: label 1.5 is outside [0, 1]")]:
            open(bad, "w").write(body)
            q = finetune(cli, base, bad, bad, os.path.join(work, "bad-out"), "--score", loss_name, "--max-steps", "1")
            check(q.returncode != 0 and want in q.stderr, "%s: %r (%s)" % (loss_name, want, q.stderr.strip()[-200:]))
            scorer = os.path.join(work, "eval-" + loss_name)
            if os.path.exists(os.path.join(scorer, "config.json")):
                q = subprocess.run([cli, "eval", "--model", scorer, "--data", bad, "--text-pair-column", "hypothesis"],
                                   capture_output=True, text=True, timeout=300)
                check(q.returncode != 0 and want in q.stderr, "berth eval, %s: %r (%s)" % (loss_name, want, q.stderr.strip()[-200:]))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
