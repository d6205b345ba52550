#!/usr/bin/env python3
"""TEI's POST /rerank against the pinned sentence-transformers' CrossEncoder.predict, run live.

The cross-encoder is generated: the bert-tiny fixture's encoder with a one-logit head that
transformers draws (seed 0) and saves, i.e. what CrossEncoder(model, num_labels=1) fine-tuning
starts from. A berth-server registers it and ranks texts against queries: each text's score
equals CrossEncoder.predict's for the (query, text) pair within 1e-5 (its default activation for
one label, the sigmoid; raw_scores against activation_fn=Identity), the results come sorted best
first with their indices, return_text gives the texts back, and truncate cuts a long pair as
CrossEncoder does (longest first). A classifier with several labels is refused as a reranker.

Why 1e-5: fp32 on both sides with the same kernels; Berth packs the padding away and orders sums
differently, so a logit differs by a few ulps of its size (~1e-7 here). Measured when this test
was written (2-core AVX2 VM, torch 2.11.0, sentence-transformers 6.3.0): at worst 9e-8 on a
sigmoid score and 5e-7 on a raw logit (of size ~1).

usage: rerank_reference_test.py berth-server berth FIXTURES_DIR
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

import torch
from sentence_transformers import CrossEncoder
from transformers import AutoTokenizer, BertForSequenceClassification

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, failures, start_server  # noqa: E402

TOL = 1e-5
QUERIES = {
    "what is the capital of france?": [
        "Paris is the capital and most populous city of France.",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
        "Berlin is the capital of Germany.",
        "Café au lait is coffee with hot milk.",
        "東京は日本の首都です 😍",
        " ".join(["France has many regions and a long history of kings and republics"] * 60),  # cut
    ],
    "how do cats purr": ["Cats purr by vibrating their laryngeal muscles.", "Dogs bark.", ""],
}


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main():
    server_bin, cli, fixtures = sys.argv[1:4]
    fixtures = os.path.abspath(fixtures)
    work = tempfile.mkdtemp(prefix="berth-rerank-")
    server = None
    try:
        ce_dir = os.path.join(work, "models", "cross-encoder")
        torch.manual_seed(0)
        src = os.path.join(fixtures, "bert-tiny-uncased")
        m = BertForSequenceClassification.from_pretrained(src, num_labels=1, ignore_mismatched_sizes=True,
                                                          problem_type="regression")
        m.save_pretrained(ce_dir)
        AutoTokenizer.from_pretrained(src).save_pretrained(ce_dir)
        ce = CrossEncoder(ce_dir, device="cpu")

        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"),
            "--model-roots", os.path.join(work, "models"), fixtures])
        base = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        for name, d in [("ce", ce_dir), ("tiny", src)]:
            p = subprocess.run([cli, "import-model", name, "--server", addr, "--server-dir", d, "--json"],
                               capture_output=True, text=True, timeout=120)
            check(p.returncode == 0, "%s registered%s" % (name, "" if p.returncode == 0 else ": " + p.stderr[-300:]))

        worst = 0.0
        for query, texts in QUERIES.items():
            pairs = [(query, t) for t in texts]
            want = ce.predict(pairs, convert_to_numpy=True).tolist()
            want_raw = ce.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True).tolist()
            code, got = post(base + "/models/ce/rerank", {"query": query, "texts": texts, "truncate": True,
                                                          "return_text": True})
            ok = code == 200 and sorted(r["index"] for r in got) == list(range(len(texts)))
            check(ok, "/rerank answers every text once (%d)" % code)
            if not ok:
                continue
            by_index = {r["index"]: r for r in got}
            diff = max(abs(by_index[i]["score"] - want[i]) for i in range(len(texts)))
            worst = max(worst, diff)
            check(diff <= TOL, "%r: the sigmoid scores CrossEncoder.predict gives (worst %.1e)" % (query, diff))
            check([r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True),
                  "results sorted best first")
            check(all(r["text"] == texts[r["index"]] for r in got), "return_text: each result's text")
            code, raw = post(base + "/models/ce/rerank", {"query": query, "texts": texts, "truncate": True,
                                                          "raw_scores": True})
            diff = max(abs(r["score"] - want_raw[r["index"]]) for r in raw) if code == 200 else float("inf")
            check(diff <= TOL, "raw_scores: the logits (worst %.1e)" % diff)
        code, err = post(base + "/models/ce/rerank", {"query": "q", "texts": [QUERIES["what is the capital of france?"][-1]]})
        check(code == 422 and "tokens" in err.get("error", ""),
              "without truncate, a pair over the model's length is refused (%d %s)" % (code, err))
        code, err = post(base + "/models/tiny/rerank", {"query": "q", "texts": ["a"]})
        check(code == 422 and err.get("error", "").startswith("model:"),
              "a 3-label classifier is not a reranker (%d %s)" % (code, err))
        print("worst difference: %.2e" % worst)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
