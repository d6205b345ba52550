#!/usr/bin/env python3
"""Embeddings through Berth's HTTP doors with real, unmodified clients, against a berth-server on
loopback serving the bert-tiny fixture as its default model: curl on TEI's POST /embed, the
Hub's InferenceClient.feature_extraction (sync and async), and the openai client with base_url
(its default base64 encoding and encoding_format="float"). Every answer equals `berth embed`
offline on the same texts (which embed_reference holds to sentence-transformers) within 1e-6:
the same engine computes both, and JSON carries floats with their 9 significant digits.

tritonclient (HTTP and gRPC) asks for the Open Inference Protocol's `embedding` output.
`berth embed --server` goes through the gRPC Embed RPC with the C++ client. A
sentence-transformers directory (modules.json, 1_Pooling/config.json, sentence_bert_config.json)
keeps its pooling through import-model and export-model.

Also the bad input the issue names, each with its status and the field in its message: texts
over the limits, dimensions larger than the model's, zero or negative dimensions, an unknown
encoding_format, a rerank with no texts (and with a model that is not a reranker), pairs sent to
/embed; and the engine's metrics count the embedding calls.

usage: embed_http_test.py berth-server berth FIXTURES_DIR   (run with .venv-clients/bin/python)
"""
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import openai
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from huggingface_hub import AsyncInferenceClient, InferenceClient

from checks import check, failures, start_server

TEXTS = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés",
         "東京は日本の首都です 😍", ""]
TOL = 1e-6


def curl(url, body):
    p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", url, "-H", "Content-Type: application/json",
                        "-d", json.dumps(body)], capture_output=True, text=True, timeout=60)
    text, _, code = p.stdout.rpartition("\n")
    try:
        return int(code or 0), json.loads(text)
    except ValueError:
        return int(code or 0), text


def offline(cli, model_dir, texts, *args):
    """`berth embed` of texts (offline from a directory, or remote with --server in args)."""
    p = subprocess.run([cli, "embed", "--model", model_dir] + list(args), input="\n".join(texts) + "\n",
                       capture_output=True, text=True, timeout=120)
    return np.array([json.loads(l)["embedding"] for l in p.stdout.splitlines() if l.strip()])


def near(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and float(np.abs(got - want).max()) <= TOL


def main():
    server_bin, cli, fixtures = sys.argv[1:4]
    fixtures = os.path.abspath(fixtures)
    tiny = os.path.join(fixtures, "bert-tiny-uncased")
    work = tempfile.mkdtemp(prefix="berth-embed-http-")
    server = None
    try:
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--model-roots", fixtures, "--default-model", "tiny",
            "--max-texts", "8", "--max-text-bytes", "2000", "--metrics-listen", "127.0.0.1:0",
            "--metrics-port-file", os.path.join(work, "metrics-port")])
        base = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()
        p = subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir", tiny, "--json"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "the bert-tiny fixture is registered as tiny")
        want = offline(cli, tiny, TEXTS)
        want_norm = offline(cli, tiny, TEXTS, "--normalize")
        want_16 = offline(cli, tiny, TEXTS, "--dimensions", "16", "--normalize")

        # curl: TEI's /embed.
        code, body = curl(base + "/embed", {"inputs": TEXTS})
        check(code == 200 and near(body, want), "curl /embed: the offline embeddings (%s)" % code)
        code, body = curl(base + "/embed", {"inputs": TEXTS[0]})
        check(code == 200 and near(body, want[:1]), "curl /embed with one string: a list of one")
        code, body = curl(base + "/models/tiny/embed", {"inputs": TEXTS, "normalize": True, "dimensions": 16})
        check(code == 200 and near(body, want_16), "curl /models/tiny/embed, dimensions 16 normalised")
        code, body = curl(base + "/embed", {"inputs": TEXTS, "normalize": True})
        check(code == 200 and near(body, want_norm) and
              np.allclose(np.linalg.norm(np.array(body), axis=1)[:3], 1, atol=1e-6),
              "curl /embed normalize: true: unit vectors")

        # The Hub's InferenceClient: feature_extraction posts TEI's payload to the URL it is given.
        client = InferenceClient(base + "/embed")
        out = client.feature_extraction(TEXTS[1])
        check(isinstance(out, np.ndarray) and near(out, want[1:2]),
              "InferenceClient.feature_extraction: %s, the offline embedding" % (getattr(out, "shape", None),))
        out = InferenceClient(base + "/models/tiny/pipeline/feature-extraction").feature_extraction(
            TEXTS[0], normalize=True)
        check(near(out, want_norm[:1]), "InferenceClient on the Hub's /pipeline/feature-extraction path, normalize")

        async def run_async():
            return await AsyncInferenceClient(base + "/embed").feature_extraction(TEXTS[2])
        check(near(asyncio.run(run_async()), want[2:3]), "AsyncInferenceClient.feature_extraction")

        # openai, unmodified, with base_url: its default asks for base64.
        oa = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        res = oa.embeddings.create(model="tiny", input=TEXTS)
        got = [d.embedding for d in sorted(res.data, key=lambda d: d.index)]
        check(near(got, want) and res.usage.prompt_tokens > 0,
              "openai embeddings.create (base64 on the wire): the offline embeddings, usage %s" % res.usage)
        res = oa.embeddings.create(model="tiny:1", input=TEXTS[0],
                                   encoding_format="float", dimensions=16)
        check(near([res.data[0].embedding], offline(cli, tiny, TEXTS[:1], "--dimensions", "16")),
              "openai encoding_format float, dimensions 16, model tiny:1")
        code, body = curl(base + "/v1/embeddings", {"model": "tiny", "input": TEXTS[:2], "encoding_format": "base64"})
        raw = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
        check(code == 200 and near(raw, want[:2]), "curl /v1/embeddings base64: little-endian float32")

        # A sentence-transformers directory keeps its pooling when registered: bert-tiny with
        # modules.json (CLS pooling, then Normalize), 1_Pooling/config.json and
        # sentence_bert_config.json (max_seq_length 6, so the longer texts are cut), uploaded as
        # an archive by `import-model --from`, embeds over /embed as `berth embed` does from the
        # directory, and `export-model` writes those files back.
        st_dir = os.path.join(work, "st-tiny")
        shutil.copytree(tiny, st_dir)
        os.makedirs(os.path.join(st_dir, "1_Pooling"))
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                  open(os.path.join(st_dir, "modules.json"), "w"))
        json.dump({"word_embedding_dimension": want.shape[1], "pooling_mode_cls_token": True,
                   "pooling_mode_mean_tokens": False}, open(os.path.join(st_dir, "1_Pooling", "config.json"), "w"))
        json.dump({"max_seq_length": 6, "do_lower_case": False}, open(os.path.join(st_dir, "sentence_bert_config.json"), "w"))
        want_st = offline(cli, st_dir, TEXTS)
        check(want_st.shape == want.shape and not near(want_st, want) and
              np.allclose(np.linalg.norm(want_st, axis=1), 1, atol=1e-6),
              "the sentence-transformers variant pools otherwise (CLS, normalised) offline")
        p = subprocess.run([cli, "import-model", "st-tiny", "--server", addr, "--from", st_dir, "--json"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "import-model --from uploads it" + ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
        code, body = curl(base + "/models/st-tiny/embed", {"inputs": TEXTS, "truncate": True})
        check(code == 200 and near(body, want_st), "curl /models/st-tiny/embed: its own pooling and length (%s)" % code)
        exported = os.path.join(work, "st-exported")
        p = subprocess.run([cli, "export-model", "st-tiny", "--server", addr, "--output", exported],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0 and all(os.path.isfile(os.path.join(exported, f)) for f in
                                        ["modules.json", "sentence_bert_config.json", os.path.join("1_Pooling", "config.json")]),
              "export-model writes modules.json, sentence_bert_config.json and 1_Pooling/config.json" +
              ("" if p.returncode == 0 else ": " + p.stderr[-300:]))
        check(near(offline(cli, exported, TEXTS), want_st), "the exported directory embeds as the original")

        # gRPC: `berth embed --server` (the Embed RPC), the C++ client's.
        check(near(offline(cli, "tiny", TEXTS, "--server", addr), want), "berth embed --server (gRPC Embed)")
        check(near(offline(cli, "tiny:1", TEXTS, "--server", addr, "--dimensions", "16", "--normalize",
                           "--batch-size", "3"), want_16),
              "berth embed --server, dimensions 16 normalised, 3 texts per request")
        p = subprocess.run([cli, "embed", "--server", addr, "--model", "tiny", "--dimensions", "65"],
                           input="x\n", capture_output=True, text=True, timeout=60)
        check(p.returncode == 2 and "INVALID_ARGUMENT" in p.stderr and "dimensions" in p.stderr,
              "berth embed --server --dimensions 65: INVALID_ARGUMENT naming dimensions (%s)" % p.stderr.strip())

        # The Open Inference Protocol: the `embedding` output, asked for by name, on both transports.
        http_port = base.rsplit(":", 1)[1]
        for lib, url in ((triton_http, "127.0.0.1:" + http_port), (triton_grpc, addr)):
            text = lib.InferInput("text", [len(TEXTS)], "BYTES")
            text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object))
            result = lib.InferenceServerClient(url).infer(
                "tiny", [text], outputs=[lib.InferRequestedOutput("embedding"), lib.InferRequestedOutput("label")])
            emb = result.as_numpy("embedding")
            check(emb is not None and emb.dtype == np.float32 and near(emb, want) and
                  result.as_numpy("label") is not None,
                  "%s: the embedding output, FP32 %s, the offline embeddings" %
                  (lib.__name__, None if emb is None else list(emb.shape)))
        meta = triton_http.InferenceServerClient("127.0.0.1:" + http_port).get_model_metadata("tiny")
        check({"name": "embedding", "datatype": "FP32", "shape": [-1, 64]} in
              [{k: o[k] for k in ("name", "datatype", "shape")} for o in meta["outputs"]],
              "the model metadata lists embedding FP32 [-1, 64]")

        # Bad input: a clear error naming the field, by status.
        for name, url, req, status, field in [
            ("texts over max-texts", "/embed", {"inputs": ["x"] * 9}, 422, "texts"),
            ("a text over max-text-bytes", "/embed", {"inputs": ["x" * 2001]}, 422, "texts[0]"),
            ("an over-long text without truncate", "/embed", {"inputs": ["a " * 700]}, 422, "702 tokens"),
            ("dimensions larger than the model's", "/embed", {"inputs": "x", "dimensions": 65}, 422, "dimensions"),
            ("dimensions 0", "/embed", {"inputs": "x", "dimensions": 0}, 422, "dimensions"),
            ("negative dimensions", "/v1/embeddings", {"input": "x", "model": "tiny", "dimensions": -3}, 422,
             "dimensions"),
            ("dimensions not an integer", "/embed", {"inputs": "x", "dimensions": "all"}, 400, "dimensions"),
            ("an unknown encoding_format", "/v1/embeddings", {"input": "x", "model": "tiny",
                                                              "encoding_format": "int8"}, 400, "encoding_format"),
            ("pairs sent to /embed", "/embed", {"inputs": [["a", "b"]]}, 422, "inputs[0]"),
            ("inputs missing", "/embed", {"text": "x"}, 400, "inputs"),
            ("a rerank with no texts", "/rerank", {"query": "q", "texts": []}, 422, "texts"),
            ("a rerank without a query", "/rerank", {"texts": ["a"]}, 400, "query"),
            ("a rerank by a 3-label classifier", "/rerank", {"query": "q", "texts": ["a"]}, 422, "model"),
            ("an unknown model", "/v1/embeddings", {"input": "x", "model": "nope"}, 404, "nope"),
        ]:
            code, body = curl(base + url, req)
            msg = body.get("error", "") if isinstance(body, dict) else str(body)
            msg = msg.get("message", "") if isinstance(msg, dict) else msg  # OpenAI's error form
            check(code == status and field in msg, "%s: %d naming %s (%d %s)" % (name, status, field, code, msg))
        try:
            oa.embeddings.create(model="tiny", input="x", dimensions=1000)
            check(False, "openai: dimensions 1000 is refused")
        except Exception as e:  # noqa: BLE001 (the check names what was raised)
            check(isinstance(e, openai.UnprocessableEntityError) and "dimensions" in str(e),
                  "openai raises UnprocessableEntityError naming dimensions: %r" % e)

        # Metrics: embeddings are served by the same engine and counted with its batches.
        metrics = "http://127.0.0.1:%s/metrics" % open(os.path.join(work, "metrics-port")).read().strip()
        text = subprocess.run(["curl", "-s", metrics], capture_output=True, text=True).stdout
        check('route="/embed"' in text and 'route="/v1/embeddings"' in text,
              "the per-route metrics count /embed and /v1/embeddings")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
