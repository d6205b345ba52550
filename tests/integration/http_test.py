#!/usr/bin/env python3
"""Berth's HTTP server and its Open Inference Protocol through real, unmodified clients: curl,
the Hub's InferenceClient (sync and async), tritonclient.http and tritonclient.grpc, against a berth-server on loopback serving the bert-tiny
fixture as its default model. Every answer is checked against the same texts classified over
gRPC (`berth classify`): the doors differ, the numbers do not.

Also: TEI's request forms (a text, a pair, a mixed batch, raw scores, truncate), errors as JSON
with their statuses (malformed 400, invalid 422, unknown 404, wrong method 405, too large 413),
keep-alive, and the per-route metrics.

usage: http_test.py berth-server berth FIXTURES_DIR   (run with .venv-clients/bin/python)
"""
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from huggingface_hub import AsyncInferenceClient, InferenceClient

from checks import check, failures, start_server

TEXTS = ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés",
         "an utterly incompetent conclusion"]


def curl(url, *args):
    """(status, parsed JSON body) of `curl -s URL ARGS`."""
    p = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", url] + list(args),
                       capture_output=True, text=True, timeout=60)
    body, _, code = p.stdout.rpartition("\n")
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = body
    return int(code or 0), parsed


def grpc_scores(cli, addr, model, texts, labels):
    """Each text's scores in label order, as gRPC gives them (`berth classify`)."""
    p = subprocess.run([cli, "classify", "--server", addr, "--model", model] + texts,
                       capture_output=True, text=True, timeout=60)
    return [[json.loads(l)["scores"][x] for x in labels] for l in p.stdout.splitlines() if l.strip()]


def close(a, b, tol=1e-6):
    return all(math.isclose(x, y, rel_tol=0, abs_tol=tol) for x, y in zip(a, b)) and len(a) == len(b)


def main():
    server_bin, cli, fixtures = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="berth-http-")
    server = None
    try:
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "127.0.0.1:0",
            "--metrics-port-file", os.path.join(work, "metrics-port"),
            "--model-roots", os.path.abspath(fixtures), "--default-model", "tiny",
            "--max-texts", "8", "--log-format", "json"])
        http_port = open(os.path.join(work, "http-port")).read().strip()
        base = "http://127.0.0.1:%s" % http_port
        p = subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir",
                            os.path.join(os.path.abspath(fixtures), "bert-tiny-uncased"), "--json"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "the bert-tiny fixture is registered as tiny: " + p.stderr[-200:])
        labels = json.loads(p.stdout)["labels"] if p.returncode == 0 else []
        want = grpc_scores(cli, addr, "tiny", TEXTS, labels)

        # curl: TEI's routes.
        code, body = curl(base + "/health")
        check(code == 200, "GET /health: 200")
        code, info = curl(base + "/info")
        check(code == 200 and info["model_id"] == "tiny:1" and info["max_input_length"] == 512 and
              info["model_type"]["classifier"]["id2label"]["0"] == labels[0],
              "GET /info names the model, its labels and its limits: %s" % (info,))
        code, one = curl(base + "/predict", "-H", "Content-Type: application/json",
                         "-d", json.dumps({"inputs": TEXTS[0]}))
        got = {p["label"]: p["score"] for p in one} if code == 200 else {}
        check(code == 200 and close([got.get(l, -1) for l in labels], want[0]) and
              [p["score"] for p in one] == sorted([p["score"] for p in one], reverse=True),
              "POST /predict with one text: every label, best first, the gRPC scores: %s" % (one,))
        code, batch = curl(base + "/predict", "-d", json.dumps({"inputs": [[t] for t in TEXTS]}))
        check(code == 200 and len(batch) == 3 and
              all(close([{p["label"]: p["score"] for p in b}[l] for l in labels], w)
                  for b, w in zip(batch, want)),
              "POST /predict with a batch: one list per text, the gRPC scores")
        code, pair = curl(base + "/predict", "-d", json.dumps({"inputs": ["a fine film", "but slow"]}))
        check(code == 200 and isinstance(pair, list) and isinstance(pair[0], dict),
              "a two-string list is one pair, not a batch (as TEI reads it)")
        code, mixed = curl(base + "/predict",
                           "-d", json.dumps({"inputs": [["a fine film", "but slow"], ["dull"]]}))
        check(code == 200 and len(mixed) == 2, "a batch mixing a pair and a single")
        code, raw = curl(base + "/predict", "-d", json.dumps({"inputs": TEXTS[1], "raw_scores": True}))
        check(code == 200 and abs(sum(p["score"] for p in raw) - 1) > 1e-3,
              "raw_scores gives logits, not probabilities: %s" % (raw,))
        long_text = "word " * 700
        code, err = curl(base + "/predict", "-d", json.dumps({"inputs": long_text}))
        check(code == 422 and err["error_type"] == "Validation" and "truncat" in err["error"],
              "an over-long text without truncate is refused (422), as TEI does: %s" % (err,))
        code, cut = curl(base + "/predict", "-d", json.dumps({"inputs": long_text, "truncate": True}))
        check(code == 200, "with truncate it is answered")
        code, toks = curl(base + "/tokenize", "-d", json.dumps({"inputs": "Hello world!"}))
        check(code == 200 and [t["text"] for t in toks[0]] == ["[CLS]", "hello", "world", "!", "[SEP]"] and
              toks[0][0]["special"] and not toks[0][1]["special"],
              "POST /tokenize: the model's tokens, the special ones marked")
        code, named = curl(base + "/models/tiny:1/predict", "-d", json.dumps({"inputs": TEXTS[2]}))
        check(code == 200 and close([{p["label"]: p["score"] for p in named}[l] for l in labels], want[2]),
              "POST /models/tiny:1/predict: a model named in the path")

        # Errors: JSON bodies with a status by meaning.
        bad_utf8 = os.path.join(work, "bad-utf8.json")
        with open(bad_utf8, "wb") as f:
            f.write(b"{\"inputs\": \"\xff\xfe caf\xe9\"}")
        for what, args, status in [
                ("malformed JSON", ["-d", "{\"inputs\": "], 400),
                ("a wrong type", ["-d", json.dumps({"inputs": 3})], 400),
                ("an empty batch", ["-d", json.dumps({"inputs": []})], 422),
                ("more texts than the server takes", ["-d", json.dumps({"inputs": [["t"]] * 9})], 422),
                ("invalid UTF-8", ["--data-binary", "@" + bad_utf8], 400)]:
            code, err = curl(base + "/predict", *args)
            check(code == status and isinstance(err, dict) and err.get("error") and err.get("error_type"),
                  "%s: %d with a JSON error (%s)" % (what, status, err))
        code, err = curl(base + "/models/nope/predict", "-d", json.dumps({"inputs": "x"}))
        check(code == 404 and err["error_type"] == "NotFound", "an unknown model: 404")
        code, err = curl(base + "/no/such/route")
        check(code == 404, "an unknown route: 404")
        code, err = curl(base + "/predict")
        check(code == 405, "GET on a POST route: 405")
        big = os.path.join(work, "big.json")
        with open(big, "wb") as f:
            f.write(b"{\"inputs\": \"" + b"x" * (17 << 20) + b"\"}")
        code, err = curl(base + "/predict", "--data-binary", "@" + big, "-H", "Expect:")
        check(code == 413, "a body over the route's limit: 413 (%s)" % code)

        # The Hub's InferenceClient, as is: POST / with {"inputs", "parameters"}.
        client = InferenceClient(base)
        out = client.text_classification(TEXTS[0])
        check([o.label for o in out][0] == max(zip(want[0], labels))[1] and
              close(sorted([o.score for o in out], reverse=True), sorted(want[0], reverse=True)),
              "InferenceClient.text_classification: the labels and scores gRPC gives: %s" % (out,))
        top = client.text_classification(TEXTS[1], top_k=1)
        check(len(top) == 1, "InferenceClient with top_k=1: one label")
        named_client = InferenceClient(base + "/models/tiny")
        check(len(named_client.text_classification(TEXTS[2])) == len(labels),
              "InferenceClient against /models/tiny")

        async def run_async():
            return await AsyncInferenceClient(base).text_classification(TEXTS[2])
        aout = asyncio.run(run_async())
        check(close(sorted([o.score for o in aout], reverse=True), sorted(want[2], reverse=True)),
              "AsyncInferenceClient.text_classification: the same answer")

        # tritonclient.http: the Open Inference Protocol.
        tc = triton_http.InferenceServerClient("127.0.0.1:%s" % http_port)
        check(tc.is_server_live() and tc.is_server_ready(), "tritonclient: the server is live and ready")
        check(tc.is_model_ready("tiny") and tc.is_model_ready("tiny", "1") and not tc.is_model_ready("nope"),
              "tritonclient: tiny (and its version 1) ready, nope not")
        meta = tc.get_server_metadata()
        check(meta["name"] == "berth" and "binary_tensor_data" in meta["extensions"],
              "tritonclient: server metadata with its extensions")
        mm = tc.get_model_metadata("tiny")
        check([i["name"] for i in mm["inputs"]] == ["text", "text_pair"] and
              mm["outputs"][0]["shape"] == [-1, len(labels)], "tritonclient: model metadata")
        cfg = tc.get_model_config("tiny")
        check(cfg["max_batch_size"] == 8 and cfg["output"][0]["data_type"] == "TYPE_FP32",
              "tritonclient: model config")
        for binary in (True, False):
            text = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
            text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_),
                                     binary_data=binary)
            outs = [triton_http.InferRequestedOutput("probabilities", binary_data=binary),
                    triton_http.InferRequestedOutput("label", binary_data=binary)]
            res = tc.infer("tiny", [text], outputs=outs)
            probs = res.as_numpy("probabilities")
            lab = [x.decode() if isinstance(x, bytes) else x for x in res.as_numpy("label").reshape(-1)]
            check(probs.shape == (3, len(labels)) and all(close(list(probs[i]), want[i]) for i in range(3)) and
                  lab[0] == labels[int(np.argmax(want[0]))],
                  "tritonclient.infer (%s tensors): the gRPC probabilities and labels" %
                  ("binary" if binary else "JSON"))
        res = tc.infer("tiny", [text], model_version="1")
        check(res.get_response()["model_version"] == "1", "tritonclient.infer of version 1")
        tc.close()

        # tritonclient.grpc: the same protocol on the gRPC port.
        gc = triton_grpc.InferenceServerClient(addr)
        check(gc.is_server_live() and gc.is_server_ready(), "tritonclient.grpc: live and ready")
        check(gc.is_model_ready("tiny") and gc.is_model_ready("tiny", "1") and
              not gc.is_model_ready("nope"), "tritonclient.grpc: tiny ready, nope not")
        gmeta = gc.get_server_metadata(as_json=True)
        check(gmeta["name"] == "berth" and "statistics" in gmeta["extensions"],
              "tritonclient.grpc: server metadata")
        gmm = gc.get_model_metadata("tiny", as_json=True)
        check(gmm["versions"] == ["1"] and [i["name"] for i in gmm["inputs"]] == ["text", "text_pair"] and
              gmm["outputs"][0]["shape"] == ["-1", str(len(labels))],
              "tritonclient.grpc: model metadata: %s" % (gmm,))
        gcfg = gc.get_model_config("tiny", as_json=True)["config"]
        check(gcfg["max_batch_size"] == 8 and gcfg["input"][0]["data_type"] == "TYPE_STRING" and
              gcfg["output"][0]["dims"] == [str(len(labels))] and
              gcfg["version_policy"]["specific"]["versions"] == ["1"],
              "tritonclient.grpc: model config: %s" % (gcfg,))
        gtext = triton_grpc.InferInput("text", [len(TEXTS)], "BYTES")
        gtext.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
        gres = gc.infer("tiny", [gtext])
        gprobs = gres.as_numpy("probabilities")
        glab = [x.decode() for x in gres.as_numpy("label").reshape(-1)]
        check(gprobs.shape == (3, len(labels)) and all(close(list(gprobs[i]), want[i]) for i in range(3)) and
              glab[0] == labels[int(np.argmax(want[0]))],
              "tritonclient.grpc.infer: the gRPC probabilities and labels")
        one = gc.infer("tiny", [gtext], model_version="1",
                       outputs=[triton_grpc.InferRequestedOutput("label")])
        check(one.get_response().model_version == "1" and one.as_numpy("probabilities") is None and
              len(one.as_numpy("label")) == 3, "tritonclient.grpc.infer of version 1, one output asked")
        pair = triton_grpc.InferInput("text_pair", [len(TEXTS)], "BYTES")
        pair.set_data_from_numpy(np.array([b"but slow"] * len(TEXTS), dtype=np.object_))
        check(gc.infer("tiny", [gtext, pair]).as_numpy("probabilities").shape == (3, len(labels)),
              "tritonclient.grpc.infer with text_pair")
        for what, inputs, model in [
                ("an unknown model", [gtext], "nope"),
                ("an unknown input", [triton_grpc.InferInput("txt", [1], "BYTES")], "tiny"),
                ("an FP32 input", [triton_grpc.InferInput("text", [1], "FP32")], "tiny")]:
            if inputs[0].name() != "text" or inputs[0].datatype() != "BYTES":
                data = np.zeros([1], dtype=np.float32) if inputs[0].datatype() == "FP32" else \
                    np.array([b"x"], dtype=np.object_)
                inputs[0].set_data_from_numpy(data)
            try:
                gc.infer(model, inputs)
                check(False, "tritonclient.grpc: %s is refused" % what)
            except triton_grpc.InferenceServerException as e:
                check(e.status() in ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT"),
                      "tritonclient.grpc: %s is refused (%s: %s)" % (what, e.status(), e.message()))

        # Statistics, from the engine's queue and forward passes, the same on both transports.
        gstats = gc.get_inference_statistics("tiny", as_json=True)["model_stats"][0]
        hstats = tc_stats = triton_http.InferenceServerClient(
            "127.0.0.1:%s" % http_port).get_inference_statistics("tiny")["model_stats"][0]
        inf = gstats["inference_stats"]
        check(int(gstats["inference_count"]) >= 9 and int(gstats["execution_count"]) >= 1 and
              inf["queue"]["count"] == gstats["inference_count"] and int(inf["compute_infer"]["ns"]) > 0 and
              int(inf["success"]["count"]) >= 4 and int(hstats["inference_count"]) >= int(gstats["inference_count"]),
              "ModelStatistics: texts, forward passes, queue and compute times: %s / %s" % (gstats, tc_stats))
        gc.close()

        # Keep-alive: several requests on one connection.
        s = socket.create_connection(("127.0.0.1", int(http_port)), timeout=30)
        req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req * 3)
        data = ""
        while data.count("HTTP/1.1 200") < 3:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk.decode(errors="replace")
        s.close()
        check(data.count("HTTP/1.1 200") == 3, "three requests on one kept-alive connection")

        mport = open(os.path.join(work, "metrics-port")).read().strip()
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport, timeout=10).read().decode()
        check('berth_http_requests_total{code="200",route="/predict"}' in text and
              'berth_http_requests_total{code="413",route="/predict"}' in text,
              "per-route, per-status metrics")
        log = open(os.path.join(work, "server.log"), errors="replace").read()
        check('"http.request"' in log and "authorization" not in log.lower(),
              "an access line per request, never the Authorization header")
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "the server exits 0 after SIGTERM")
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        if failures:
            sys.stdout.write(open(os.path.join(work, "server.log"), errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("http: all checks passed" if not failures else "http: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
