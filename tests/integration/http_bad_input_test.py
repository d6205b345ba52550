#!/usr/bin/env python3
"""Bad input at Berth's HTTP door, each case with the status it must get, against a berth-server
on loopback serving the bert-tiny fixture: malformed and truncated JSON, wrong types at every
field, invalid UTF-8, empty batches, 10,000 texts, a 100 MB body, 10,000 headers, a client
sending one byte a second, 1,000 idle connections, a client that disconnects while its request
is queued (its work is dropped before any forward pass), and unknown models, versions and
routes. Every error is JSON naming what was wrong; the server stays up, keeps its thread count
with 1,000 connections open, and its memory stays flat over repeated rounds.

Also: a limit set once in the facade reads the same on every door (HTTP /predict, HTTP and
gRPC Open Inference Protocol, Berth's gRPC Classify), and changes on all of them together.

usage: http_bad_input_test.py berth-server berth FIXTURES_DIR   (with .venv-clients/bin/python)
"""
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import tritonclient.grpc as triton_grpc

from checks import check, failures, start_server


def request(base, method, path, body=None, headers=None, timeout=60):
    """(status, parsed JSON or raw text) of one HTTP request."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def raw_exchange(port, payload, timeout=30):
    """Sends bytes on a fresh connection and reads until the server closes it or a whole
    response (headers and Content-Length body) has come; returns the status (0: none)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        return read_status(s)
    finally:
        s.close()


def read_status(s):
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    first = data.split(b"\r\n", 1)[0].split(b" ")
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


ROUNDS = 12  # after the first, for the memory check


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def threads(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def metrics(mport):
    return urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport, timeout=10).read().decode()


def is_error(body, *words):
    """A JSON error body whose message names each of `words`."""
    return (isinstance(body, dict) and isinstance(body.get("error"), str) and body.get("error_type") and
            all(w in body["error"] for w in words))


def oip(texts, datatype="BYTES", shape=None):
    return {"inputs": [{"name": "text", "datatype": datatype, "shape": shape or [len(texts)], "data": texts}]}


# (what, method, path, body, status, words the error must name)
def cases():
    bad_utf8 = b'{"inputs": "\xff\xfe caf\xe9"}'
    binary = struct.pack("<I", 3) + b"\xff\xfe\xe9"
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(binary)}}]}).encode()
    out = [
        # Malformed and truncated JSON.
        ("malformed JSON /predict", "POST", "/predict", b"{inputs: x}", 400, ["JSON"]),
        ("truncated JSON /predict", "POST", "/predict", b'{"inputs": ["a fine', 400, ["JSON"]),
        ("truncated JSON POST /", "POST", "/", b'{"inputs": "x", "parameters": {', 400, ["JSON"]),
        ("truncated JSON /tokenize", "POST", "/tokenize", b'{"inputs": "x', 400, ["JSON"]),
        ("truncated JSON /v2 infer", "POST", "/v2/models/tiny/infer", b'{"inputs": [{"name"', 400, ["JSON"]),
        ("a JSON array body", "POST", "/predict", b"[1, 2]", 400, ["object"]),
        # Wrong types at every field.
        ("/predict inputs: a number", "POST", "/predict", {"inputs": 3}, 400, ["inputs"]),
        ("/predict inputs: an object", "POST", "/predict", {"inputs": {"a": 1}}, 400, ["inputs"]),
        ("/predict inputs: [1]", "POST", "/predict", {"inputs": [1]}, 400, ["inputs"]),
        ("/predict inputs: [[1]]", "POST", "/predict", {"inputs": [[1]]}, 400, ["inputs"]),
        ("/predict inputs: a triple", "POST", "/predict", {"inputs": [["a", "b", "c"]]}, 400, ["inputs"]),
        ("/predict inputs missing", "POST", "/predict", {"input": "x"}, 400, ["inputs"]),
        ("/predict truncate: a string", "POST", "/predict", {"inputs": "x", "truncate": "yes"}, 400, ["truncate"]),
        ("/predict raw_scores: a number", "POST", "/predict", {"inputs": "x", "raw_scores": 1}, 400, ["raw_scores"]),
        ("/predict truncation_direction: a number", "POST", "/predict",
         {"inputs": "x", "truncate": True, "truncation_direction": 5}, 400, ["truncation_direction"]),
        ("/predict truncation_direction: Up", "POST", "/predict",
         {"inputs": "x", "truncate": True, "truncation_direction": "Up"}, 400, ["truncation_direction"]),
        ("POST / inputs: a number", "POST", "/", {"inputs": 3}, 400, ["inputs"]),
        ("POST / inputs: [1]", "POST", "/", {"inputs": [1]}, 400, ["inputs"]),
        ("POST / parameters: a string", "POST", "/", {"inputs": "x", "parameters": "x"}, 400, ["parameters"]),
        ("POST / top_k: a string", "POST", "/", {"inputs": "x", "parameters": {"top_k": "3"}}, 400, ["top_k"]),
        ("POST / top_k: 0", "POST", "/", {"inputs": "x", "parameters": {"top_k": 0}}, 400, ["top_k"]),
        ("POST / function_to_apply: a number", "POST", "/",
         {"inputs": "x", "parameters": {"function_to_apply": 5}}, 400, ["function_to_apply"]),
        ("POST / function_to_apply: max", "POST", "/",
         {"inputs": "x", "parameters": {"function_to_apply": "max"}}, 400, ["function_to_apply"]),
        ("/tokenize inputs: a number", "POST", "/tokenize", {"inputs": 3}, 400, ["inputs"]),
        ("/tokenize add_special_tokens: a string", "POST", "/tokenize",
         {"inputs": "x", "add_special_tokens": "no"}, 400, ["add_special_tokens"]),
        ("/v2 infer id: a number", "POST", "/v2/models/tiny/infer", dict(oip(["x"]), id=3), 400, ["id"]),
        ("/v2 infer inputs: an object", "POST", "/v2/models/tiny/infer", {"inputs": {}}, 400, ["inputs"]),
        ("/v2 infer name: a number", "POST", "/v2/models/tiny/infer",
         {"inputs": [{"name": 3, "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, 400, ["inputs[0]"]),
        ("/v2 infer datatype: a number", "POST", "/v2/models/tiny/infer",
         {"inputs": [{"name": "text", "datatype": 3, "shape": [1], "data": ["x"]}]}, 400, ["inputs[0].datatype"]),
        ("/v2 infer datatype: FP32", "POST", "/v2/models/tiny/infer", oip([1.0], "FP32"), 400,
         ["inputs[0].datatype", "BYTES"]),
        ("/v2 infer shape: a string", "POST", "/v2/models/tiny/infer",
         {"inputs": [{"name": "text", "datatype": "BYTES", "shape": "1", "data": ["x"]}]}, 400, ["inputs[0].shape"]),
        ("/v2 infer shape: negative", "POST", "/v2/models/tiny/infer", oip(["x"], shape=[-1]), 400,
         ["inputs[0].shape"]),
        ("/v2 infer shape: [1, 2]", "POST", "/v2/models/tiny/infer", oip(["x", "y"], shape=[1, 2]), 400,
         ["inputs[0].shape"]),
        ("/v2 infer data: numbers", "POST", "/v2/models/tiny/infer", oip([1]), 400, ["inputs[0].data"]),
        ("/v2 infer data: too few", "POST", "/v2/models/tiny/infer", oip(["x"], shape=[2]), 400,
         ["inputs[0].data"]),
        ("/v2 infer parameters: a string", "POST", "/v2/models/tiny/infer", dict(oip(["x"]), parameters="x"), 400,
         ["parameters"]),
        ("/v2 infer outputs: a string", "POST", "/v2/models/tiny/infer", dict(oip(["x"]), outputs="x"), 400,
         ["outputs"]),
        ("/v2 infer outputs: unknown", "POST", "/v2/models/tiny/infer",
         dict(oip(["x"]), outputs=[{"name": "logits"}]), 400, ["outputs[0]", "logits"]),
        ("/v2 infer binary_data: a string", "POST", "/v2/models/tiny/infer",
         dict(oip(["x"]), outputs=[{"name": "label", "parameters": {"binary_data": "yes"}}]), 400,
         ["binary_data"]),
        ("/v2 infer input: unknown", "POST", "/v2/models/tiny/infer",
         {"inputs": [{"name": "txt", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, 400, ["txt"]),
        # Invalid UTF-8.
        ("invalid UTF-8 /predict", "POST", "/predict", bad_utf8, 400, []),
        ("invalid UTF-8 POST /", "POST", "/", bad_utf8, 400, []),
        ("invalid UTF-8 /tokenize", "POST", "/tokenize", bad_utf8, 400, []),
        ("invalid UTF-8 in binary BYTES", "POST", "/v2/models/tiny/infer", (header, binary), 422, ["UTF-8"]),
        # Empty batches.
        ("an empty batch /predict", "POST", "/predict", {"inputs": []}, 422, ["texts"]),
        ("an empty batch POST /", "POST", "/", {"inputs": []}, 422, ["texts"]),
        ("an empty batch /tokenize", "POST", "/tokenize", {"inputs": []}, 422, ["texts"]),
        ("an empty batch /v2 infer", "POST", "/v2/models/tiny/infer", oip([], shape=[0]), 422, ["texts"]),
        # 10,000 texts (the server takes 256 by default).
        ("10,000 texts /predict", "POST", "/predict", {"inputs": [["t"]] * 10000}, 422, ["256"]),
        ("10,000 texts POST /", "POST", "/", {"inputs": ["t"] * 10000}, 422, ["256"]),
        ("10,000 texts /v2 infer", "POST", "/v2/models/tiny/infer", oip(["t"] * 10000), 422, ["256"]),
        # Unknown models, versions, aliases and routes.
        ("an unknown model", "POST", "/models/nope/predict", {"inputs": "x"}, 404, ["nope"]),
        ("an unknown version", "POST", "/models/tiny:9/predict", {"inputs": "x"}, 404, []),
        ("an unknown alias", "POST", "/models/tiny@nope/predict", {"inputs": "x"}, 404, []),
        ("an unknown model (Inference API)", "POST", "/models/nope", {"inputs": "x"}, 404, ["nope"]),
        ("an unknown model (v2)", "GET", "/v2/models/nope", None, 404, ["nope"]),
        ("an unknown version (v2)", "GET", "/v2/models/tiny/versions/9", None, 404, []),
        ("an unknown version (v2 infer)", "POST", "/v2/models/tiny/versions/9/infer", oip(["x"]), 404, []),
        ("an unknown route", "GET", "/no/such/route", None, 404, []),
        ("an unknown v2 route", "GET", "/v2/models/tiny/nonsense", None, 404, []),
        ("a wrong method", "GET", "/predict", None, 405, []),
    ]
    return out


def run_cases(base):
    for what, method, path, body, status, words in cases():
        headers = {"Content-Type": "application/json"}
        if isinstance(body, tuple):  # the binary tensor extension: JSON header, then tensors
            headers["Inference-Header-Content-Length"] = str(len(body[0]))
            body = body[0] + body[1]
        code, got = request(base, method, path, body, headers)
        check(code == status and is_error(got, *words),
              "%s: %d naming %s (got %d: %s)" % (what, status, words, code, str(got)[:200]))


def facade_messages(cli, addr, base, texts):
    """The error the same too-large request gets on each door."""
    out = {}
    p = subprocess.run([cli, "classify", "--server", addr, "--model", "tiny", "--batch-size",
                        str(len(texts))] + texts,
                       capture_output=True, text=True, timeout=60)
    out["grpc Classify"] = p.stderr
    out["http /predict"] = request(base, "POST", "/predict", {"inputs": [[t] for t in texts]})[1].get("error", "")
    out["http /v2 infer"] = request(base, "POST", "/v2/models/tiny/infer", oip(texts))[1].get("error", "")
    gc = triton_grpc.InferenceServerClient(addr)
    t = triton_grpc.InferInput("text", [len(texts)], "BYTES")
    t.set_data_from_numpy(np.array([x.encode() for x in texts], dtype=np.object_))
    try:
        gc.infer("tiny", [t])
        out["grpc ModelInfer"] = ""
    except triton_grpc.InferenceServerException as e:
        out["grpc ModelInfer"] = e.message()
    gc.close()
    return out


def main():
    server_bin, cli, fixtures = sys.argv[1:4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # 1,000 sockets, both ends
    work = tempfile.mkdtemp(prefix="berth-http-bad-")
    server = None

    def start(extra):
        proc, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "127.0.0.1:0",
            "--metrics-port-file", os.path.join(work, "metrics-port"), "--model-roots",
            os.path.abspath(fixtures), "--default-model", "tiny", "--http-header-timeout", "2"] + extra,
            # Two malloc arenas, not one per thread: with the request pool's 16 threads each
            # filling an arena of its own to its high-water mark as requests land on it, RSS
            # climbs for ~8 rounds before it levels (+53 MB measured here): capacity, not growth.
            # With two, a round's memory is reused by the next (the memory check below).
            env=dict(os.environ, MALLOC_ARENA_MAX="2"))
        return (proc, addr, int(open(os.path.join(work, "http-port")).read()),
                open(os.path.join(work, "metrics-port")).read().strip())

    try:
        server, addr, port, mport = start([])
        base = "http://127.0.0.1:%d" % port
        p = subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir",
                            os.path.join(os.path.abspath(fixtures), "bert-tiny-uncased")],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "the bert-tiny fixture is registered: " + p.stderr[-200:])

        # Round 1 warms up (the model loads); rounds 2 and 3 must not grow the process.
        run_cases(base)
        rss_warm = rss_kib(server.pid)

        big = os.path.join(work, "big.json")
        with open(big, "wb") as f:
            f.write(b'{"inputs": "' + b"x" * (100 << 20) + b'"}')
        started = time.time()
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
                            "--data-binary", "@" + big, base + "/predict"],
                           capture_output=True, text=True, timeout=120)
        check(p.stdout == "413", "a 100 MB body: 413 (got %s in %.1f s)" % (p.stdout, time.time() - started))
        os.remove(big)
        check(raw_exchange(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n") == 413,
              "a declared 100 MB body is refused (413) before any of it is sent")

        many = b"".join(b"X-Header-%d: value\r\n" % i for i in range(10000))
        check(raw_exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") == 431,
              "10,000 headers: 431")

        # One byte a second: the server closes the connection once the header timeout (2 s) is
        # up, long before the 33 bytes of the request have come.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        started, closed = time.time(), False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n":
            try:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                if s.recv(1024) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
        s.close()
        check(closed and time.time() - started < 20,
              "a client sending one byte a second is closed by the header timeout (after %.1f s)" %
              (time.time() - started))

        # 1,000 idle keep-alive connections: no thread each, and the server still answers.
        before = threads(server.pid)
        idle = []
        for _ in range(1000):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            idle.append(c)
        for c in idle[:10]:  # a few have sent a whole request first, then gone idle
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            read_status(c)
        code, _ = request(base, "POST", "/predict", {"inputs": "still answering"})
        during = threads(server.pid)
        check(code == 200 and during == before,
              "1,000 idle connections: still answering, threads %d before and %d with them open" % (before, during))
        for c in idle:
            c.close()

        run_cases(base)
        rss_round = rss_kib(server.pid)
        rss = [rss_round]
        for _ in range(ROUNDS):
            run_cases(base)
            rss.append(rss_kib(server.pid))
        steps = sorted(b - a for a, b in zip(rss, rss[1:]))
        # Flat: what a round (~60 requests) allocates is given back, so the process stops
        # growing. RSS still steps up now and then without a leak: on a loaded CI machine three
        # rounds once grew it by 1,120 KiB (a large request's temporaries reaching memory the
        # process had not touched before), where +68 KiB was measured when the check was
        # written; idle rounds here measure 0-80 KiB each, with medians of 0-16 KiB. A leak grows
        # it every round instead, so the check is on the median round, under 48 KiB, and on the
        # rounds' sum, under 4 MiB. Tried with a leak of 8 KiB per request put into the access
        # log: rounds of 136-856 KiB, median 448-472 KiB, 5.2-5.4 MiB in all, failing both. RSS
        # cannot see a leak much smaller: one of 1 KiB per request, tried the same way, fitted
        # into freed memory the process keeps and went unseen over 12 rounds.
        check(steps[len(steps) // 2] < 48 and rss[-1] - rss_round < 4 << 10,
              "memory flat: %d KiB after the first round, %d KiB after the big bodies, headers and "
              "1,000 connections and one more, then %d more rounds: %s KiB each (median %d KiB, "
              "%d KiB in all)" % (rss_warm, rss_round, ROUNDS, [b - a for a, b in zip(rss, rss[1:])],
                                  steps[len(steps) // 2], rss[-1] - rss_round))

        # One limit, every door: the same message, and a new value shows on all of them.
        msgs = facade_messages(cli, addr, base, ["t"] * 300)
        want = "texts: 300 texts; this server takes at most 256 per request"  # the facade's words
        check(all(want in m for m in msgs.values()), "max-texts 256, byte for byte on every door: %s" % msgs)
        check(server.poll() is None, "the server is still up")
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "and exits 0 after SIGTERM")

        # A client that disconnects while its request waits for a batch: the texts are dropped
        # before any forward pass (batches wait 3 s here, so the request is surely queued).
        server, addr, port, mport = start(["--batch-max-wait-ms", "3000", "--max-texts", "5"])
        base = "http://127.0.0.1:%d" % port
        msgs = facade_messages(cli, addr, base, ["t"] * 6)
        want = "texts: 6 texts; this server takes at most 5 per request"
        check(all(want in m for m in msgs.values()), "--max-texts 5 shows on every door: %s" % msgs)
        body = json.dumps({"inputs": "a caller who gives up"}).encode()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        queued = 'berth_inference_queue_depth{model="tiny:1"} 1'
        deadline = time.time() + 60
        while time.time() < deadline and queued not in metrics(mport):
            time.sleep(0.005)
        s.close()
        dropped = 'berth_inference_dropped_total{model="tiny:1",reason="cancelled"} 1'
        text = ""
        deadline = time.time() + 30
        while time.time() < deadline and dropped not in text:
            time.sleep(0.05)
            text = metrics(mport)
        check(dropped in text and "berth_batch_size_count 0" in text,
              "a client gone mid-request: its text dropped, no forward pass run")
        code, _ = request(base, "POST", "/predict", {"inputs": "the next caller"})
        check(code == 200, "the model answers the next caller")
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=60) == 0, "the second server exits 0 after SIGTERM")
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        if failures:
            sys.stdout.write(open(os.path.join(work, "server.log"), errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("http bad input: all checks passed" if not failures else
          "http bad input: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
