#!/usr/bin/env python3
"""`berth predict` through the inference engine, as a user pipes a file through it.

usage: predict_window_test.py PATH/TO/berth FIXTURES_DIR SST2_TSV

- Output order and values: SST-2 sentences read in windows of 8 (input longer than the
  window), batched by length, equal line by line what the same lines give one at a time
  (--batch-size 1), labels identical and logits within 1e-5 (fp32: a row's logits depend on its
  batch only through the blocking of the matrix products; the golden fixtures hold 1e-5 too).
- Bounded read-ahead: with --window 8, the first 8 results come out while stdin is still open,
  so the input is not read to its end before anything is answered.
- A bad line stops the run naming the line; the lines before it are answered.
- A killed pipe (`| head -n 1`): berth stops at its next write, without a crash.
Exits 1 on any failure.
"""
import json
import os
import subprocess
import sys
import threading

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def predict(cli, model, args, lines):
    data = "".join(l + "\n" for l in lines).encode("utf-8")
    p = subprocess.run([cli, "predict", "--model", model, "--max-length", "128"] + args, input=data,
                       capture_output=True, timeout=600)
    return p, [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def main():
    cli, fixtures, sst2 = sys.argv[1], sys.argv[2], sys.argv[3]
    model = os.path.join(fixtures, "bert-tiny-uncased")
    with open(sst2, encoding="utf-8") as f:
        next(f)
        sentences = [line.rsplit("\t", 1)[0] for line in f if line.strip()][:60]

    # Order and values: windows of 8 against one line at a time.
    p_one, one = predict(cli, model, ["--batch-size", "1"], sentences)
    p_win, win = predict(cli, model, ["--window", "8", "--batch-size", "16"], sentences)
    check(p_one.returncode == 0 and p_win.returncode == 0, "predict exits 0: %s %s" % (p_one.stderr, p_win.stderr))
    check(len(one) == len(sentences) and len(win) == len(sentences),
          "one result per line (%d, %d for %d)" % (len(one), len(win), len(sentences)))
    worst, same = 0.0, 0
    for a, b in zip(one, win):
        worst = max(worst, max(abs(x - y) for x, y in zip(a["logits"], b["logits"])))
        same += a["label"] == b["label"]
    check(worst <= 1e-5, "windowed logits equal one-at-a-time ones (worst %.2e)" % worst)
    check(same == len(sentences), "labels %d/%d" % (same, len(sentences)))
    print("window 8 vs one at a time: worst |logit diff| %.2e, labels %d/%d" % (worst, same, len(sentences)))

    # Bounded read-ahead: 8 lines in, 8 results out, stdin still open.
    proc = subprocess.Popen([cli, "predict", "--model", model, "--window", "8"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write("".join(s + "\n" for s in sentences[:8]).encode())
    proc.stdin.flush()
    got = []

    def read8():
        for _ in range(8):
            line = proc.stdout.readline()
            if not line:
                return
            got.append(line)

    reader = threading.Thread(target=read8)
    reader.start()
    reader.join(timeout=60)
    check(len(got) == 8, "the first window is answered before stdin ends (%d of 8 lines)" % len(got))
    proc.stdin.write((sentences[8] + "\n").encode())
    proc.stdin.close()
    rest = proc.stdout.read().decode().splitlines()
    check(proc.wait(timeout=60) == 0 and len(rest) == 1, "the last, partial window after EOF (%d lines)" % len(rest))

    # A bad line: the ones before it are answered, the error names it.
    raw = b"".join(s.encode() + b"\n" for s in sentences[:10]) + b"bad \xc3\n" + b"".join(
        s.encode() + b"\n" for s in sentences[:3])
    p = subprocess.run([cli, "predict", "--model", model, "--window", "8"], input=raw, capture_output=True, timeout=600)
    out = [l for l in p.stdout.decode().splitlines() if l.strip()]
    check(p.returncode == 1 and b"stdin line 11" in p.stderr, "a bad line is named: %s" % p.stderr)
    check(len(out) == 10, "the 10 lines before it are answered (%d)" % len(out))

    # A killed pipe: head takes one line and exits; berth ends at its next write.
    many = "".join(sentences[i % len(sentences)] + "\n" for i in range(5000)).encode()
    pipe = subprocess.Popen(["sh", "-c", '"$0" predict --model "$1" --window 16 | head -n 1', cli, model],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = pipe.communicate(many, timeout=300)
    check(len(out.decode().splitlines()) == 1 and json.loads(out.decode())["label"] == one[0]["label"],
          "head got the first result: %r" % out[:200])
    check(b"terminate called" not in err and b"Segmentation" not in err and b"Aborted" not in err,
          "no crash on the closed pipe: %s" % err[-500:])

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("predict_window: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
