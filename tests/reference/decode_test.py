#!/usr/bin/env python3
"""POST /decode (TEI's route) against transformers' tokenizer.decode, live: for each fixture
tokenizer family (WordPiece uncased and DistilBERT's, byte-level BPE, SentencePiece), the
fixtures' test texts are encoded by transformers, and the ids decoded by Berth's server must
equal transformers' decode of them, with special tokens skipped and kept, one sequence and a
batch. Also: an id outside the vocabulary is a 422 naming its place.

usage: decode_test.py berth-server berth FIXTURES_DIR INPUTS_JSON   (run with .venv/bin/python)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from transformers import AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, failures, start_server  # noqa: E402

FAMILIES = ["bert-tiny-uncased", "distilbert-tiny", "roberta-tiny", "xlmr-tiny"]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main():
    server_bin, cli, fixtures, inputs = sys.argv[1:5]
    texts_of = json.load(open(inputs))
    work = tempfile.mkdtemp(prefix="berth-decode-")
    server = None
    try:
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "",
            "--model-roots", os.path.abspath(fixtures), "--max-texts", "1000"])
        base = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        for family in FAMILIES:
            d = os.path.join(os.path.abspath(fixtures), family)
            name = family.replace("-", "")
            p = subprocess.run([cli, "import-model", name, "--server", addr, "--server-dir", d],
                               capture_output=True, text=True, timeout=120)
            check(p.returncode == 0, "%s registered: %s" % (family, p.stderr[-200:]))
            tok = AutoTokenizer.from_pretrained(d)
            texts = texts_of.get(family, texts_of["bert-tiny-uncased"])["texts"]
            ids = [tok(t)["input_ids"] for t in texts]
            for skip in (True, False):
                want = [tok.decode(x, skip_special_tokens=skip) for x in ids]
                code, got = post(base + "/models/%s/decode" % name, {"ids": ids, "skip_special_tokens": skip})
                bad = [(w, g) for w, g in zip(want, got)] if code == 200 else []
                bad = [b for b in bad if b[0] != b[1]]
                check(code == 200 and len(got) == len(want) and not bad,
                      "%s: a batch of %d decodes as transformers does (skip_special_tokens=%s) %s" %
                      (family, len(ids), skip, bad[:2] if code == 200 else got))
            code, one = post(base + "/models/%s/decode" % name, {"ids": ids[1]})
            check(code == 200 and one == [tok.decode(ids[1], skip_special_tokens=True)],
                  "%s: one sequence is a list of one text" % family)
            code, err = post(base + "/models/%s/decode" % name, {"ids": [[1, 2], [3, 10 ** 9]]})
            check(code == 422 and "ids[1][1]" in err.get("error", ""),
                  "%s: an id outside the vocabulary names its place: %s" % (family, err))
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
