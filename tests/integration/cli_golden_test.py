#!/usr/bin/env python3
"""`berth tokenize` / `berth predict` as a user runs them, against the golden fixtures.

usage: cli_golden_test.py PATH/TO/berth FIXTURES_DIR
Checks every line of tokens.jsonl, tokens_cased.jsonl (--no-lowercase), pairs_max24.jsonl and
logits.jsonl for each fixture model, plus the CLI's error handling. Exits 1 on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(cli, args, lines=None, raw=None):
    data = raw if raw is not None else "".join(l + "\n" for l in lines).encode("utf-8")
    return subprocess.run([cli] + args, input=data, capture_output=True, timeout=600)


def multiline(row):
    return any(c in row.get(k, "") for k in ("text", "text_pair") for c in "\n\r")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    cli, root = sys.argv[1], sys.argv[2]
    for name in sorted(os.listdir(root)):
        model = os.path.join(root, name)
        ex = os.path.join(model, "expected")
        if not os.path.exists(os.path.join(ex, "meta.json")):
            continue
        meta = json.load(open(os.path.join(ex, "meta.json")))
        ml = str(meta["max_length"])
        for fname, extra, pair, length in [("tokens.jsonl", [], False, ml),
                                           ("tokens_cased.jsonl", ["--no-lowercase"], False, ml),
                                           ("pairs_max24.jsonl", ["--pairs"], True, str(meta["pairs_max_length"]))]:
            path = os.path.join(ex, fname)
            if not os.path.exists(path):
                # make_fixtures.py writes cased tokens for BERT and pairs for the pair fixtures only;
                # uncased tokens every fixture has.
                check(fname != "tokens.jsonl", f"{name}: expected/tokens.jsonl exists")
                print(f"{name} {fname}: not in this fixture")
                continue
            # One example per line: texts with a line break of their own cannot be given.
            exp = [r for r in load(path) if not multiline(r)]
            lines = [(r["text"] + "\t" + r["text_pair"]) if pair else r["text"] for r in exp]
            p = run(cli, ["tokenize", "--model", model, "--max-length", length] + extra, lines)
            check(p.returncode == 0, f"{name} {fname}: exit {p.returncode} {p.stderr[-300:]}")
            got = [json.loads(l) for l in p.stdout.decode().split("\n") if l]
            check(len(got) == len(exp), f"{name} {fname}: {len(got)} lines for {len(exp)}")
            bad = [i for i, (e, g) in enumerate(zip(exp, got))
                   if any(g[k] != e[k] for k in ("input_ids", "token_type_ids", "attention_mask", "tokens"))]
            check(not bad, f"{name} {fname}: lines differ: {bad[:5]}")
            print(f"{name} {fname}: {len(exp) - len(bad)}/{len(exp)} exact")
        exp = [r for r in load(os.path.join(ex, "logits.jsonl")) if not multiline(r)]
        for bs in ("1", "16"):
            p = run(cli, ["predict", "--model", model, "--max-length", ml, "--batch-size", bs], [r["text"] for r in exp])
            check(p.returncode == 0, f"{name} predict: exit {p.returncode}")
            got = [json.loads(l) for l in p.stdout.decode().split("\n") if l]
            check(len(got) == len(exp), f"{name} predict: {len(got)} lines for {len(exp)}")
            worst = max(max(abs(a - b) for a, b in zip(e["logits"], g["logits"])) for e, g in zip(exp, got))
            labels = sum(e["label"] == g["label"] for e, g in zip(exp, got))
            check(worst <= meta["tolerance_logits_abs"], f"{name} predict batch {bs}: worst {worst:.2e}")
            check(labels == len(exp), f"{name} predict batch {bs}: {labels}/{len(exp)} labels")
            print(f"{name} predict --batch-size {bs}: worst |logit diff| {worst:.2e}, labels {labels}/{len(exp)}")

    # Errors: a missing model directory, a directory that is not a model, bad UTF-8.
    p = run(cli, ["predict", "--model", "/nonexistent/model"], ["x"])
    check(p.returncode != 0 and b"/nonexistent/model" in p.stderr, "missing model dir must fail naming it")
    with tempfile.TemporaryDirectory() as d:
        p = run(cli, ["predict", "--model", d], ["x"])
        check(p.returncode != 0 and b"config.json" in p.stderr, "empty dir must fail naming config.json")
    model = os.path.join(root, "bert-tiny-uncased")
    p = run(cli, ["tokenize", "--model", model], raw=b"fine\nbad \xc3\n")
    check(p.returncode != 0 and b"line 2" in p.stderr, f"bad UTF-8 must name the line: {p.stderr!r}")
    p = run(cli, ["tokenize", "--model", model, "--invalid-utf8", "replace"], raw=b"bad \xc3 x\n")
    check(p.returncode == 0 and len(p.stdout.splitlines()) == 1, "--invalid-utf8 replace must succeed")
    p = run(cli, ["tokenize", "--model", model, "--pairs"], ["no tab here"])
    check(p.returncode != 0 and b"tab" in p.stderr, "--pairs without a tab must fail clearly")
    p = run(cli, ["predict", "--help"], [])
    check(p.returncode == 0 and b"--batch-size" in p.stdout, "predict --help")

    print("all CLI checks passed" if not failures else f"{len(failures)} CLI checks failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
