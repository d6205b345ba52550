#!/usr/bin/env python3
"""Hub downloads against a local fake Hub on 127.0.0.1 (no internet): cache layout, resume
after a dropped connection, checksum failure, tokens, offline mode, a sentence-transformers
repository's pooling files (one in a folder) fetched and used by `berth embed`, and a Hub base
model for `berth finetune`.

usage: hub_test.py PATH/TO/berth FIXTURES_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from checks import check, failures

HERE = os.path.dirname(os.path.abspath(__file__))


class Hub:
    def __init__(self, root, *args, log=None):
        cmd = [sys.executable, os.path.join(HERE, "fake_hub.py"), root] + list(args)
        if log:
            cmd += ["--log", log]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        self.url = "http://127.0.0.1:%s" % line[1]

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=10)


def berth(cli, args, env, stdin=""):
    return subprocess.run([cli] + args, input=stdin.encode(), capture_output=True, env=env, timeout=300)


def main():
    cli, fixtures = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="berth-hub-")
    try:
        root = os.path.join(work, "hub")
        for repo, fx in (("org/tiny", "bert-tiny-uncased"), ("org/train", "bert-tiny-train")):
            dst = os.path.join(root, repo)
            os.makedirs(dst)
            for f in os.listdir(os.path.join(fixtures, fx)):
                if os.path.isfile(os.path.join(fixtures, fx, f)):
                    shutil.copy(os.path.join(fixtures, fx, f), dst)
        # org/tiny is also a sentence-transformers model: CLS pooling, then Normalize (its
        # pooling module's config sits in a folder, as sentence-transformers saves it).
        tiny_repo = os.path.join(root, "org/tiny")
        os.makedirs(os.path.join(tiny_repo, "1_Pooling"))
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                  open(os.path.join(tiny_repo, "modules.json"), "w"))
        json.dump({"word_embedding_dimension": 128, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
                  open(os.path.join(tiny_repo, "1_Pooling", "config.json"), "w"))
        expected = json.loads(open(os.path.join(fixtures, "bert-tiny-uncased/expected/logits.jsonl")).readline())
        log = os.path.join(work, "hub.log")
        hub = Hub(root, "--fail-once-after", "100000", log=log)
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(work, "home"))
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_TOKEN", None)
        cache = os.path.join(work, "home/hub/models--org--tiny")

        # 1. The connection drops mid-download: a clear error, and only a partial blob.
        p = berth(cli, ["predict", "--model", "org/tiny", "--max-length", "128"], env, expected["text"] + "\n")
        check(p.returncode != 0 and b"resume" in p.stderr, "dropped download fails asking to run again: %r" % p.stderr[-200:])
        blobs = os.listdir(os.path.join(cache, "blobs")) if os.path.isdir(os.path.join(cache, "blobs")) else []
        check(any(b.endswith(".incomplete") for b in blobs), "a partial .incomplete blob is kept: %s" % blobs)

        # 2. Run again: the download resumes with a Range request and the model works.
        p = berth(cli, ["predict", "--model", "org/tiny", "--max-length", "128"], env, expected["text"] + "\n")
        check(p.returncode == 0, "second run succeeds: %r" % p.stderr[-300:])
        check("RANGE bytes=100000-" in open(log).read(), "the download resumed from byte 100000")
        if p.returncode == 0:
            got = json.loads(p.stdout)
            worst = max(abs(a - b) for a, b in zip(got["logits"], expected["logits"]))
            check(worst < 1e-5, "logits from the downloaded model match (worst %.1e)" % worst)
        snap = os.path.join(cache, "snapshots")
        commits = os.listdir(snap) if os.path.isdir(snap) else []
        check(len(commits) == 1, "one snapshot per commit: %s" % commits)
        if commits:
            cfg = os.path.join(snap, commits[0], "config.json")
            check(os.path.islink(cfg) and os.readlink(cfg).startswith("../../blobs/"), "snapshot files link into blobs/")
            check(open(os.path.join(cache, "refs/main")).read().strip() == commits[0], "refs/main names the commit")
            pooling = os.path.join(snap, commits[0], "1_Pooling", "config.json")
            check(os.path.islink(pooling) and os.readlink(pooling).startswith("../../../blobs/") and
                  os.path.isfile(pooling), "the pooling config is fetched into its folder, linked into blobs/")
            want = berth(cli, ["embed", "--model", tiny_repo], env, "hello world\n")
            got = berth(cli, ["embed", "--model", "org/tiny"], dict(env, HF_HUB_OFFLINE="1"), "hello world\n")
            check(want.returncode == 0 and got.returncode == 0 and got.stdout == want.stdout and
                  abs(sum(v * v for v in json.loads(got.stdout)["embedding"]) - 1) < 1e-5,
                  "the downloaded model embeds as its repository does (CLS, normalised)")
        check(not any(b.endswith(".incomplete") for b in os.listdir(os.path.join(cache, "blobs"))), "no partial blobs left")
        hub.stop()

        # 3. Offline, and with the Hub gone: the cache answers.
        off = dict(env, HF_HUB_OFFLINE="1")
        p = berth(cli, ["tokenize", "--model", "org/tiny"], off, "hello\n")
        check(p.returncode == 0, "HF_HUB_OFFLINE=1 uses the cache")
        p = berth(cli, ["tokenize", "--model", "org/tiny"], env, "hello\n")
        check(p.returncode == 0, "an unreachable Hub falls back to the cache")
        p = berth(cli, ["tokenize", "--model", "org/other"], off, "hello\n")
        check(p.returncode != 0 and b"HF_HUB_OFFLINE" in p.stderr, "offline miss names HF_HUB_OFFLINE")

        # 4. A corrupted blob is rejected and leaves nothing in the cache.
        hub = Hub(root, "--corrupt")
        env2 = dict(env, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(work, "home2"))
        p = berth(cli, ["tokenize", "--model", "org/tiny"], env2, "hello\n")
        check(p.returncode != 0 and b"SHA-256" in p.stderr, "checksum mismatch is an error: %r" % p.stderr[-200:])
        blobs2 = os.path.join(work, "home2/hub/models--org--tiny/blobs")
        sizes = [os.path.getsize(os.path.join(blobs2, b)) for b in os.listdir(blobs2)]
        check(all(s < 1000000 for s in sizes), "no corrupt weights blob in the cache")
        hub.stop()

        # 5. Tokens: 401 without HF_TOKEN, success with it.
        hub = Hub(root, "--require-token", "s3cret")
        env3 = dict(env, HF_ENDPOINT=hub.url, HF_HOME=os.path.join(work, "home3"))
        p = berth(cli, ["tokenize", "--model", "org/tiny"], env3, "hello\n")
        check(p.returncode != 0 and b"HF_TOKEN" in p.stderr, "401 suggests HF_TOKEN")
        p = berth(cli, ["tokenize", "--model", "org/tiny"], dict(env3, HF_TOKEN="s3cret"), "hello\n")
        check(p.returncode == 0, "HF_TOKEN is sent as a bearer token")

        # 6. A Hub id as the base model of a fine-tuning run, with a revision.
        train = os.path.join(work, "train.jsonl")
        with open(train, "w") as f:
            for i in range(16):
                f.write(json.dumps({"text": "good movie %d" % i if i % 2 else "bad film %d" % i,
                                    "label": "positive" if i % 2 else "negative"}) + "\n")
        p = berth(cli, ["finetune", "--base-model", "org/train@main", "--train", train, "--output",
                        os.path.join(work, "out"), "--max-steps", "2", "--json"], dict(env3, HF_TOKEN="s3cret"))
        check(p.returncode == 0 and os.path.isfile(os.path.join(work, "out/model.safetensors")),
              "finetune from a Hub base model: %r" % p.stderr[-300:])
        hub.stop()
        p = berth(cli, ["predict", "--model", "../not/here"], env, "x\n")
        check(p.returncode != 0 and b"does not exist" in p.stderr, "a missing relative path is not sent to the Hub")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("hub: all checks passed" if not failures else "hub: %d checks failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
