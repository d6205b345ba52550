#!/usr/bin/env python3
"""Graceful drain under load: with `berth loadtest` running against a berth-server that is also
training, SIGTERM the server. After the drain starts no call may fail with anything but
UNAVAILABLE, every call the client sent gets an answer, every call the server had accepted
finishes OK, the server exits 0 — and after a restart the interrupted job resumes and succeeds
with one model version.

Nothing here waits on the clock. The signal goes once the server's own figures show the load
answered (berth_requests_total), and a call is certainly in flight when it goes: a
ClassifyStream (`berth classify --stream`) that has had one answer and stays open. The stream
is answered again once the server has logged that it drains, then closed, so it ends during the
drain, OK.

One exception belongs to gRPC, not Berth: a call whose HTTP/2 stream reaches the server after
Shutdown begins but before the client has read the GOAWAY is never given to a handler; gRPC
core (1.51, and still in 2026: grpc/grpc#41785, no double GOAWAY: grpc/grpc#24237) ends it
with CANCELLED and the bare message "CANCELLED". In a 400 calls/s drain it hit 3 runs of 6 on the 2-core CI machine.
Such calls are allowed only with exactly that message (every CANCELLED a Berth handler returns
says why), and the server's own count of calls that ended badly during the drain must be 0.

usage: drain_test.py berth-server berth DATA_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from checks import check, failures, start_server


def start(server_bin, work):
    return start_server(server_bin, work, ["--data-dir", os.path.join(work, "data"),
                                           "--metrics-listen", "127.0.0.1:0",
                                           "--metrics-port-file", os.path.join(work, "metrics-port"),
                                           "--drain-timeout", "20", "--training-threads", "1",
                                           "--inference-threads", "1", "--log-format", "json"])


def classify_ok(work):
    """The server's count of Classify calls answered OK (its /metrics)."""
    port = open(os.path.join(work, "metrics-port")).read().strip()
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("berth_requests_total{") and 'method="Classify"' in l and 'code="OK"' in l)


def wait_for(what, cond, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    check(False, "in time: " + what)
    return False


def logged(work, event):
    return any('"%s"' % event in l for l in open(os.path.join(work, "server.log"), errors="replace"))


def main():
    server_bin, cli, data = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="berth-drain-")
    server = None
    try:
        server, addr = start(server_bin, work)
        train = os.path.join(data, "sst2-sample", "train.tsv")
        common = ["--server", addr, "--base-model", "config:bert-tiny", "--train", train, "--batch-size", "8",
                  "--max-length", "48", "--json"]
        p = subprocess.run([cli, "train", "--name", "m", "--max-steps", "10", "--watch"] + common,
                           capture_output=True, timeout=300)
        check(p.returncode == 0, "a model to classify with")
        p = subprocess.run([cli, "train", "--name", "long", "--max-steps", "400", "--save-steps", "40"] + common,
                           capture_output=True, timeout=60)
        job = json.loads(p.stdout)["job_id"]
        deadline = time.time() + 120
        while time.time() < deadline:
            st = json.loads(subprocess.run([cli, "status", job, "--json", "--server", addr],
                                           capture_output=True).stdout or b"{}")
            if int(st.get("progress", {}).get("update", "0")) >= 45:
                break
            time.sleep(0.2)
        check(st.get("state") == "JOB_STATE_RUNNING", "the long job is running before the drain")

        load = subprocess.Popen([cli, "loadtest", "--server", addr, "--model", "m", "--rate", "40", "--duration", "12",
                                 "--texts-per-request", "48", "--allow-codes", "UNAVAILABLE,CANCELLED"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for("the server answers the load (5 Classify calls OK)", lambda: classify_ok(work) >= 5)
        stream = subprocess.Popen([cli, "classify", "--stream", "--server", addr, "--model", "m"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stream.stdin.write("a gorgeous, witty movie.\n")
        stream.stdin.flush()
        first = json.loads(stream.stdout.readline() or "{}")
        check("label" in first, "a ClassifyStream call answered once and held open: %s" % first)
        check(load.poll() is None, "the load still runs when the drain begins")
        server.send_signal(signal.SIGTERM)
        wait_for("the server logs server.draining", lambda: logged(work, "server.draining"))
        stream.stdin.write("a dull mess\n")
        stream.stdin.flush()
        second = json.loads(stream.stdout.readline() or "{}")
        stream.stdin.close()
        check("label" in second and stream.wait(timeout=60) == 0,
              "the open stream is still answered during the drain, then ends OK: %s %s"
              % (second, stream.stderr.read()[-300:]))
        rc = server.wait(timeout=60)
        check(rc == 0, "the server exits 0 after SIGTERM (got %s)" % rc)
        out, err = load.communicate(timeout=120)
        report = json.loads(out)
        print(json.dumps(report["codes"]), "latency_ms", json.dumps(report["latency_ms"]))
        print(json.dumps(report["errors"]))
        check(load.returncode == 0 and set(report["codes"]) <= {"OK", "UNAVAILABLE", "CANCELLED"},
              "loadtest saw only OK, UNAVAILABLE and gRPC's shutdown CANCELLED: %s" % report["codes"])
        cancelled = {m: n for m, n in report["errors"].items() if m.startswith("CANCELLED")}
        check(set(cancelled) <= {"CANCELLED: CANCELLED"},
              "every CANCELLED is gRPC core's shutdown race, none from a handler: %s" % cancelled)
        check(report["codes"].get("OK", 0) > 0 and report["codes"].get("UNAVAILABLE", 0) > 0,
              "the drain happened mid-load (both OK and UNAVAILABLE answers)")
        check(report["completed"] == report["sent"], "every call sent got an answer (%d/%d)"
              % (report["completed"], report["sent"]))
        stopped = [json.loads(l) for l in open(os.path.join(work, "server.log"), errors="replace")
                   if l.startswith("{") and '"server.stopped"' in l]
        check(len(stopped) == 1 and stopped[0]["drained_failed"] == "0" and int(stopped[0]["drained_ok"]) >= 1,
              "calls in flight at SIGTERM finished, all OK (%s)" % (stopped[-1] if stopped else None))
        check(os.path.exists(os.path.join(work, "data", "jobs", job, "checkpoints-1", "latest")),
              "the running job wrote a checkpoint")

        server, addr = start(server_bin, work)
        p = subprocess.run([cli, "watch", job, "--json", "--server", addr], capture_output=True, timeout=600)
        final = json.loads(p.stdout or b"{}")
        check(final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the interrupted job resumed and succeeded with version 1")
        models = json.loads(subprocess.run([cli, "models", "--json", "--server", addr], capture_output=True).stdout)
        check(len([m for m in models["models"] if m["name"] == "long"]) == 1, "one version of the resumed model")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        if failures:
            sys.stdout.write(open(os.path.join(work, "server.log"), errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("drain: all checks passed" if not failures else "drain: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
