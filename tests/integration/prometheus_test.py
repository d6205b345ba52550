#!/usr/bin/env python3
"""A real Prometheus scrapes a real berth-server: a training job's own series while it runs (the
job is cancelled once they are seen), then traffic and a short training run; Prometheus's HTTP
API must show the series and values; our alert rules load; and every metric
the Grafana dashboard queries is one the server exported.

usage: prometheus_test.py PROMETHEUS_BINARY berth-server berth DATA_DIR DEPLOY_DIR
Exits 77 (skipped) when the Prometheus binary is absent; scripts/setup.sh installs it.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from checks import check, failures


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_file(path, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        if proc.poll() is not None:
            raise RuntimeError("process exited with %d" % proc.returncode)
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + path)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def query(prom, expr):
    # An error is not an empty result: a check that expects no series must not pass on a failed query.
    body = json.loads(get("http://127.0.0.1:%d/api/v1/query?%s" % (prom, urllib.parse.urlencode({"query": expr}))))
    if body.get("status") != "success":
        raise RuntimeError("Prometheus query %r failed: %s" % (expr, body))
    return body["data"]["result"]


def main():
    prom_bin, server_bin, cli, data, deploy = sys.argv[1:6]
    if not os.path.exists(prom_bin):
        print("SKIP: no Prometheus binary at %s (scripts/setup.sh installs Debian's prometheus)" % prom_bin)
        return 77
    work = tempfile.mkdtemp(prefix="berth-prom-")
    procs = []
    try:
        server = subprocess.Popen(
            [server_bin, "--data-dir", os.path.join(work, "data"), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--port-file", os.path.join(work, "port"), "--metrics-listen", "127.0.0.1:0",
             "--metrics-port-file", os.path.join(work, "mport"), "--training-threads", "1",
             "--inference-threads", "1", "--log-format", "json"],
            stdout=open(os.path.join(work, "server.log"), "wb"), stderr=subprocess.STDOUT)
        procs.append(server)
        port = wait_file(os.path.join(work, "port"), server)
        mport = wait_file(os.path.join(work, "mport"), server)
        addr = "127.0.0.1:%d" % port

        # Prometheus scraping every second, with our alert rules.
        shutil.copy(os.path.join(deploy, "prometheus", "alerts.yml"), work)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\n"
                    "scrape_configs:\n  - job_name: berth\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % mport)
        prom = free_port()
        prometheus = subprocess.Popen(
            [prom_bin, "--config.file=" + os.path.join(work, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(work, "tsdb"), "--web.listen-address=127.0.0.1:%d" % prom],
            stdout=open(os.path.join(work, "prometheus.log"), "wb"), stderr=subprocess.STDOUT)
        procs.append(prometheus)
        deadline = time.time() + 60
        ready = False
        while time.time() < deadline and not ready:
            try:
                ready = "Ready" in get("http://127.0.0.1:%d/-/ready" % prom, timeout=2)
            except Exception:
                time.sleep(0.2)
        check(ready, "Prometheus started")

        sst2 = os.path.join(data, "sst2-sample")
        train_args = ["--server", addr, "--base-model", "config:bert-tiny", "--train", os.path.join(sst2, "train.tsv"),
                      "--validation", os.path.join(sst2, "validation.tsv"), "--eval-steps", "40", "--batch-size",
                      "16", "--max-length", "48", "--json"]

        def arrived(expr, want, seconds=30):
            deadline = time.time() + seconds
            while time.time() < deadline:
                r = query(prom, expr)
                if r and want(float(r[0]["value"][1])):
                    return float(r[0]["value"][1])
                time.sleep(0.5)
            return None

        # A training job's own series, scraped while it runs: the job is long enough never to end
        # on its own during the test, and is cancelled once Prometheus holds every series (no
        # race between a short job and the 1 s scrape).
        p = subprocess.run([cli, "train", "--name", "long-job", "--max-steps", "1000000"] + train_args,
                           capture_output=True, timeout=120)
        check(p.returncode == 0, "a long training job was queued: " + p.stderr.decode()[-300:])
        long_job = json.loads(p.stdout)["job_id"] if p.returncode == 0 else ""
        for name in ("berth_training_samples_per_second", "berth_training_loss", "berth_training_updates_total",
                     'berth_training_eval_metric{metric="accuracy"}'):
            v = arrived("max(%s)" % name, lambda x: x > 0, seconds=300)
            check(v is not None, "%s was scraped while the job ran (%s)" % (name, v))
        p = subprocess.run([cli, "status", "--server", addr, long_job], capture_output=True, timeout=60)
        state = json.loads(p.stdout).get("state") if p.returncode == 0 else None
        check(state == "JOB_STATE_RUNNING", "the job was still running when its series were seen (%s)" % state)
        subprocess.run([cli, "cancel", "--server", addr, long_job], capture_output=True, timeout=60)
        v = arrived('berth_jobs{state="CANCELLED"}', lambda x: x >= 1)
        check(v is not None, "berth_jobs{state=CANCELLED}")

        # Traffic: a short training run for a model, classifications, one error.
        p = subprocess.run([cli, "train", "--name", "sst2-demo", "--max-steps", "240", "--watch"] + train_args,
                           capture_output=True, timeout=600)
        check(p.returncode == 0, "a training job ran: " + p.stderr.decode()[-300:])
        for _ in range(10):
            subprocess.run([cli, "classify", "--model", "sst2-demo", "--server", addr, "great", "awful"],
                           capture_output=True, timeout=60)
        subprocess.run([cli, "classify", "--model", "no-such-model", "--server", addr, "x"], capture_output=True)

        v = arrived('sum(berth_requests_total{method="Classify",code="OK"})', lambda x: x >= 10)
        check(v is not None, "berth_requests_total{method=Classify,code=OK} reached Prometheus (%s)" % v)
        v = arrived('sum(berth_requests_total{code="NOT_FOUND"})', lambda x: x >= 1)
        check(v is not None, "the NOT_FOUND call is counted by code")
        v = arrived('sum(berth_classify_texts_total{model="sst2-demo"})', lambda x: x >= 20)
        check(v is not None, "berth_classify_texts_total counts texts (%s)" % v)
        v = arrived('berth_jobs{state="SUCCEEDED"}', lambda x: x >= 1)
        check(v is not None, "berth_jobs{state=SUCCEEDED}")
        v = arrived('sum(berth_request_duration_seconds_count{method="Classify"})', lambda x: x >= 10)
        check(v is not None, "the latency histogram has every Classify")
        v = arrived('sum(berth_batch_size_count)', lambda x: x >= 1)
        check(v is not None, "batch histograms observed")
        v = arrived('berth_models_loaded', lambda x: x >= 1)
        check(v is not None, "berth_models_loaded")
        v = arrived('process_resident_memory_bytes', lambda x: x > 1e6)
        check(v is not None, "process metrics")
        check(not query(prom, "berth_training_loss"), "per-job series are gone once the jobs ended")
        v = arrived('up{job="berth"}', lambda x: x == 1)
        check(v is not None, "the target is up")

        rules = json.loads(get("http://127.0.0.1:%d/api/v1/rules" % prom))
        names = [r["name"] for g in rules["data"]["groups"] for r in g["rules"]]
        check("BerthHighErrorRatio" in names and len(names) >= 5, "Prometheus loaded our alert rules")

        # Every metric the dashboard queries is one the server exported.
        exported = set(json.loads(get("http://127.0.0.1:%d/api/v1/label/__name__/values" % prom))["data"])
        dash = json.load(open(os.path.join(deploy, "grafana", "berth-dashboard.json")))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        used = set()
        for e in exprs + [dash["templating"]["list"][0]["definition"]]:
            used.update(re.findall(r"\b((?:berth|process)_[a-z_]+)", e))
        missing = sorted(m for m in used if m not in exported)
        check(len(used) >= 15 and not missing, "the dashboard's %d metrics are all exported (missing: %s)"
              % (len(used), missing))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if failures:
            for log in ("server.log", "prometheus.log"):
                path = os.path.join(work, log)
                if os.path.exists(path):
                    sys.stdout.write("--- %s\n%s\n" % (log, open(path, errors="replace").read()[-2000:]))
        shutil.rmtree(work, ignore_errors=True)
    print("prometheus: all checks passed" if not failures else "prometheus: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
