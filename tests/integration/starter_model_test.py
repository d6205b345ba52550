#!/usr/bin/env python3
"""The starter model by its real name, offline: scripts/starter-model.sh (which scripts/setup.sh
runs) places the pinned all-MiniLM-L6-v2 in a Hugging Face cache as a download would leave it.

usage: starter_model_test.py PATH/TO/berth REPO_ROOT SST2_TSV

- Placement: refs/main names a snapshot holding every file of scripts/starter-model.sha256 with
  those hashes; a second run changes nothing.
- `berth finetune --base-model sentence-transformers/all-MiniLM-L6-v2` with HF_HUB_OFFLINE=1
  and that cache trains two updates from the real weights: the saved model has the MiniLM shape
  (6 layers, hidden 384) and a fresh two-label head.
- A source whose file differs from the recorded hash (one byte of vocab.txt) places nothing
  and says so; neither does a source that lacks a file.
- A cache whose refs/main already names another complete snapshot (a real download) is left
  alone.
Exits 1 on any failure.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

failures = []
REPO = "models--sentence-transformers--all-MiniLM-L6-v2"


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def manifest(root):
    out = {}
    for line in open(os.path.join(root, "scripts", "starter-model.sha256"), encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(None, 1)
            out[name.strip()] = digest
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def place(root, cache, source=None):
    cmd = [os.path.join(root, "scripts", "starter-model.sh"), "--cache", cache]
    if source:
        cmd += ["--source", source]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


def main():
    cli, root, sst2 = sys.argv[1], sys.argv[2], sys.argv[3]
    files = manifest(root)
    check("model.safetensors" in files and "config.json" in files, "the manifest lists the weights and config")
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "hub")
        p = place(root, cache)
        check(p.returncode == 0, f"placing the starter model: {p.stderr.strip()}")
        repo = os.path.join(cache, REPO)
        rev = open(os.path.join(repo, "refs", "main")).read().strip()
        snapshot = os.path.join(repo, "snapshots", rev)
        for name, digest in files.items():
            path = os.path.join(snapshot, name)
            check(os.path.isfile(path) and sha256(path) == digest, f"{name} placed with its recorded hash")
        before = tree(cache)
        p = place(root, cache)
        check(p.returncode == 0 and tree(cache) == before, "a second run changes nothing")

        out = os.path.join(tmp, "out")
        env = dict(os.environ, HF_HUB_CACHE=cache, HF_HUB_OFFLINE="1")
        p = subprocess.run([cli, "finetune", "--base-model", "sentence-transformers/all-MiniLM-L6-v2", "--train", sst2,
                            "--max-steps", "2", "--batch-size", "4", "--max-length", "64", "--output", out],
                           capture_output=True, text=True, timeout=600, env=env)
        check(p.returncode == 0, f"finetune from the cached Hub id offline: {p.stderr.strip()[-500:]}")
        if p.returncode == 0:
            result = json.loads(p.stdout)
            check(result["updates"] == 2, "two updates")
            config = json.load(open(os.path.join(out, "config.json")))
            check(config["hidden_size"] == 384 and config["num_hidden_layers"] == 6, "the MiniLM shape")
            check(len(config["id2label"]) == 2, "a two-label head")

        # A source that differs from the record, or lacks a file: nothing placed.
        source = os.path.dirname(os.path.join(snapshot, "config.json"))
        for what, damage in (("a changed byte", "flip"), ("a missing file", "remove")):
            bad = os.path.join(tmp, "bad-" + damage)
            shutil.copytree(source, bad)
            vocab = os.path.join(bad, "vocab.txt")
            if damage == "flip":
                data = bytearray(open(vocab, "rb").read())
                data[100] ^= 1
                open(vocab, "wb").write(bytes(data))
            else:
                os.remove(vocab)
            empty = os.path.join(tmp, "cache-" + damage)
            p = place(root, empty, bad)
            check(p.returncode != 0 and "nothing placed" in p.stderr, f"{what} is refused: {p.stderr.strip()[-300:]}")
            check(not os.path.exists(os.path.join(empty, REPO, "snapshots", rev)), f"{what} leaves no snapshot")

        # A real download already in the cache is not replaced.
        other = os.path.join(tmp, "other")
        real = os.path.join(other, REPO, "snapshots", "0" * 40)
        os.makedirs(real)
        shutil.copy(os.path.join(snapshot, "config.json"), real)
        os.makedirs(os.path.join(other, REPO, "refs"))
        open(os.path.join(other, REPO, "refs", "main"), "w").write("0" * 40)
        p = place(root, other)
        check(p.returncode == 0 and "left alone" in p.stdout, "an existing snapshot is left alone")
        check(open(os.path.join(other, REPO, "refs", "main")).read() == "0" * 40, "refs/main still names it")
    if failures:
        print(f"starter_model_test: {len(failures)} failure(s)")
        return 1
    print("starter_model_test: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
