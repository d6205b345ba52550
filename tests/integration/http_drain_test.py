#!/usr/bin/env python3
"""Graceful drain over HTTP: SIGTERM while a /predict call waits for its batch. The call in
flight is answered (200); a request arriving on an open keep-alive connection gets 503 with the
JSON error body (Unhealthy) and Connection: close; a new connection is refused (the listener has
closed, so a load balancer moves on); the server exits 0. Every step waits on what the server
reports (its queue metric, its log), not on the clock.

usage: http_drain_test.py berth-server berth FIXTURES_DIR
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from checks import check, failures, start_server


def wait_for(what, cond, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    check(False, "timed out waiting for " + what)
    return False


def main():
    server_bin, cli, fixtures = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="berth-http-drain-")
    server = None
    try:
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "127.0.0.1:0",
            "--metrics-port-file", os.path.join(work, "metrics-port"), "--default-model", "tiny",
            "--batch-max-wait-ms", "3000", "--drain-timeout", "30", "--log-format", "json",
            "--model-roots", os.path.abspath(fixtures)])
        port = int(open(os.path.join(work, "http-port")).read())
        metrics = "http://127.0.0.1:%s/metrics" % open(os.path.join(work, "metrics-port")).read().strip()
        p = subprocess.run([cli, "import-model", "tiny", "--server", addr, "--server-dir",
                            os.path.join(os.path.abspath(fixtures), "bert-tiny-uncased")],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "the bert-tiny fixture is registered: " + p.stderr[-200:])
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        idle.request("GET", "/health")
        r = idle.getresponse()
        r.read()
        check(r.status == 200, "a keep-alive connection, answered once and left open")

        answer = {}

        def predict():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", "/predict", body=json.dumps({"inputs": "a gorgeous movie"}))
            resp = c.getresponse()
            answer["status"], answer["body"] = resp.status, resp.read()

        t = threading.Thread(target=predict)
        t.start()

        def queued():
            text = urllib.request.urlopen(metrics, timeout=10).read().decode()
            return any(l.startswith("berth_inference_queue_depth") and not l.endswith(" 0")
                       for l in text.splitlines())
        wait_for("the call to wait in the batcher", queued)
        server.send_signal(signal.SIGTERM)
        wait_for("the drain to begin", lambda: '"server.draining"' in
                 open(os.path.join(work, "server.log"), errors="replace").read())
        idle.request("GET", "/v2/health/ready")
        r = idle.getresponse()
        body = json.loads(r.read() or b"{}")
        check(r.status == 503 and body.get("error_type") == "Unhealthy" and
              (r.getheader("Connection") or "").lower() == "close",
              "draining: a request on an open connection gets 503 Unhealthy and Connection: close (%d %s)"
              % (r.status, body))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        check(refused, "draining: a new connection is refused")
        t.join(timeout=60)
        check(answer.get("status") == 200 and b"label" in answer.get("body", b""),
              "the call in flight is answered: %s" % answer)
        check(server.wait(timeout=60) == 0, "the server exits 0")
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        if failures:
            print(open(os.path.join(work, "server.log"), errors="replace").read()[-2000:])
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
