#!/usr/bin/env python3
"""`berth finetune` / `berth eval` as a user runs them: per-update JSON log, Ctrl-C writes a
checkpoint and exits 130, --resume continues to the end, eval prints metrics as JSON.

usage: finetune_cli_test.py PATH/TO/berth DATA_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from checks import check, failures


def main():
    cli, data = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="berth-ft-")
    try:
        out = os.path.join(work, "model")
        log = os.path.join(work, "log.jsonl")
        args = [cli, "finetune", "--base-model", "config:bert-tiny",
                "--train", os.path.join(data, "sst2-sample/train.tsv"),
                "--validation", os.path.join(data, "sst2-sample/validation.tsv"),
                "--output", out, "--epochs", "1", "--batch-size", "8", "--max-length", "48",
                "--save-steps", "10", "--log-jsonl", log, "--json"]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:
            if os.path.exists(log) and sum(1 for _ in open(log)) >= 25:
                break
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
        check(p.returncode == 130, "Ctrl-C exits 130 (got %s): %r" % (p.returncode, stderr[-300:]))
        res = json.loads(stdout) if stdout.strip() else {}
        check(res.get("cancelled") is True, "the JSON result says cancelled")
        check(b"--resume" in stderr, "the message says how to resume")
        stopped_at = res.get("updates", 0)
        check(os.path.isfile(os.path.join(out + ".checkpoints", "latest")), "a checkpoint was written")
        check(not os.path.exists(out), "no half-finished model directory")

        rows = [json.loads(l) for l in open(log)]
        check(all(set(r) == {"update", "epoch", "loss", "lr", "grad_norm"} for r in rows),
              "log rows are {update, epoch, loss, lr, grad_norm}")

        p = subprocess.run(args + ["--resume"], capture_output=True, timeout=300)
        check(p.returncode == 0, "--resume finishes: %r" % p.stderr[-300:])
        res = json.loads(p.stdout) if p.returncode == 0 else {}
        check(res.get("updates") == 250, "all 250 updates done: %s" % res.get("updates"))
        rows = [json.loads(l) for l in open(log)]
        after = [r["update"] for r in rows if r["update"] > stopped_at]
        check(after and after[0] == stopped_at + 1 and after[-1] == 250,
              "updates continue from %d to 250" % stopped_at)
        check(os.path.isfile(os.path.join(out, "model.safetensors")) and
              os.path.isfile(os.path.join(out, "metrics.json")), "the model and metrics.json are saved")
        check(not os.path.exists(out + ".checkpoints"), "checkpoints are removed after success")
        cfg = json.load(open(os.path.join(out, "config.json")))
        check(cfg["id2label"] == {"0": "0", "1": "1"} and cfg["problem_type"] == "single_label_classification",
              "config.json carries id2label and problem_type")

        p = subprocess.run([cli, "eval", "--model", out, "--data", os.path.join(data, "sst2-sample/validation.tsv")],
                           capture_output=True, timeout=120)
        check(p.returncode == 0, "eval runs")
        m = json.loads(p.stdout) if p.returncode == 0 else {}
        check(m.get("examples") == 200 and 0 <= m.get("accuracy", -1) <= 1 and "confusion_matrix" in m,
              "eval prints metrics JSON")
        # Through the engine a window at a time: windows of 7 (the last one partial) and
        # batches of 3 give the same predictions; the loss agrees to fp32 rounding (see
        # FinetuneTest.EvaluationWindowsAgree).
        p = subprocess.run([cli, "eval", "--model", out, "--data", os.path.join(data, "sst2-sample/validation.tsv"),
                            "--window", "7", "--batch-size", "3"], capture_output=True, timeout=120)
        w = json.loads(p.stdout) if p.returncode == 0 else {}
        check(w.get("confusion_matrix") == m.get("confusion_matrix") and
              abs(w.get("loss", 1e9) - m.get("loss", 0)) < 1e-5, "eval in windows of 7 agrees")
        p = subprocess.run([cli, "finetune", "--base-model", "config:bert-tiny", "--train",
                            os.path.join(work, "missing.csv"), "--output", os.path.join(work, "x")],
                           capture_output=True, timeout=60)
        check(p.returncode == 1 and b"missing.csv" in p.stderr, "a missing training file is named")
        p = subprocess.run([cli, "finetune", "--help"], capture_output=True)
        check(p.returncode == 0 and b"--grad-accum" in p.stdout and b"--class-weights" in p.stdout, "finetune --help")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("finetune CLI: all checks passed" if not failures else "finetune CLI: %d checks failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
