#!/usr/bin/env python3
"""berth-server on PostgreSQL (`--store postgresql://...`), a real server this test starts on
loopback: upload → train → classify; a server killed with SIGKILL mid-training resumes the job
from its checkpoint after a restart and registers exactly one version, with the job's events
in PostgreSQL and no SQLite file in the data directory; aliases; `--role serve` and
`--role train` processes sharing the database and data directory (the serve replica never
claims, the train worker does; watch, classify, aliases and cancel cross between them); an
unreachable database stops the server at start with a message that names it without its
password.

usage: store_postgresql_test.py PATH/TO/berth-server PATH/TO/berth DATA_DIR
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

from checks import Postgres, check, failures, start_server


def run(cli, args, server, timeout=300):
    p = subprocess.run([cli] + args + ["--server", server], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    server_bin, cli, data = sys.argv[1], sys.argv[2], sys.argv[3]
    work = tempfile.mkdtemp(prefix="berth-pgsvc-")
    pg = Postgres()
    proc = None
    procs = []
    try:
        pg.psql("postgres", "CREATE DATABASE berth")
        url = pg.url("berth")
        args = ["--data-dir", os.path.join(work, "data"), "--store", url, "--metrics-listen", "",
                "--training-threads", "1", "--inference-threads", "1"]
        proc, addr = start_server(server_bin, work, args)
        with open(os.path.join(data, "sst2-sample", "train.tsv")) as f:
            lines = f.read().splitlines()
        train = os.path.join(work, "train.tsv")
        with open(train, "w") as f:
            f.write("\n".join(lines[:241]) + "\n")

        rc, out, err = run(cli, ["upload", train], addr)
        check(rc == 0, "upload exits 0: " + err[-300:])
        dataset = json.loads(out)["dataset_id"] if rc == 0 else ""
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", dataset,
                                 "--validation-split", "0.2", "--name", "sst2", "--max-steps", "20",
                                 "--batch-size", "8", "--max-length", "48", "--watch", "--json"], addr)
        final = json.loads(out) if rc == 0 else {}
        check(final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "a job on PostgreSQL succeeds with version 1: " + err[-300:])
        rc, out, err = run(cli, ["classify", "--model", "sst2", "a gorgeous film"], addr)
        check(rc == 0 and json.loads(out).get("model_version") == 1, "classify serves it: " + err[-300:])
        check(pg.psql("berth", "SELECT count(*) FROM models WHERE name = 'sst2'") == "1",
              "the version is a row in PostgreSQL")
        check(not os.path.exists(os.path.join(work, "data", "berth.db")), "no SQLite file in the data directory")

        # kill -9 mid-training; the restarted server resumes the job from its checkpoint.
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", dataset,
                                 "--name", "resumable", "--max-steps", "300", "--save-steps", "20",
                                 "--batch-size", "8", "--max-length", "48", "--json"], addr)
        job = json.loads(out)["job_id"] if rc == 0 else ""
        seen, deadline = 0, time.time() + 120
        while time.time() < deadline:
            rc, out, err = run(cli, ["status", job, "--json"], addr)
            st = json.loads(out) if rc == 0 else {}
            seen = int(st.get("progress", {}).get("update", "0"))
            if st.get("state") == "JOB_STATE_RUNNING" and seen >= 40:
                break
            time.sleep(0.1)
        check(seen >= 40, "the job made progress before the kill (update %d)" % seen)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check(pg.psql("berth", "SELECT state FROM jobs WHERE id = '%s'" % job) == "RUNNING",
              "PostgreSQL holds the job as RUNNING after the kill")
        proc, addr = start_server(server_bin, work, args)
        rc, out, err = run(cli, ["watch", job, "--json"], addr)
        final = json.loads(out) if out else {}
        check(rc == 0 and final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the resumed job succeeded with version 1: " + err[-300:])
        resumed = pg.psql("berth", "SELECT count(*) FROM job_events WHERE job_id = '%s' AND kind = 'resumed'" % job)
        check(resumed == "1", "the job resumed from its checkpoint once (%s)" % resumed)
        check(pg.psql("berth", "SELECT count(*) FROM models WHERE name = 'resumable'") == "1",
              "exactly one version of the resumed model")

        rc, out, err = run(cli, ["alias", "sst2", "production", "1"], addr)
        rc2, out2, err2 = run(cli, ["classify", "--model", "sst2@production", "fine"], addr)
        check(rc == 0 and rc2 == 0 and json.loads(out2)["model_version"] == 1, "aliases on PostgreSQL")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc = None

        # Roles: a serve replica queues jobs and never claims them; a train worker on the same
        # database and data directory claims them; watching, classifying, aliases and cancel
        # work through either.
        os.makedirs(os.path.join(work, "serve"))
        os.makedirs(os.path.join(work, "train"))
        serve, saddr = start_server(server_bin, os.path.join(work, "serve"), args + ["--role", "serve"])
        procs.append(serve)
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", dataset,
                                 "--name", "viaserve", "--max-steps", "20", "--batch-size", "8",
                                 "--max-length", "48", "--json"], saddr)
        queued = json.loads(out)["job_id"] if rc == 0 else ""
        time.sleep(3)  # longer than a worker's poll
        check(pg.psql("berth", "SELECT state FROM jobs WHERE id = '%s'" % queued) == "QUEUED",
              "a serve replica queues the job and does not claim it")
        trainer, taddr = start_server(server_bin, os.path.join(work, "train"), args + ["--role", "train"])
        procs.append(trainer)
        rc, out, err = run(cli, ["watch", queued, "--json"], saddr)
        final = json.loads(out) if out else {}
        check(rc == 0 and final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the train worker runs it, watched through the serve replica: " + err[-300:])
        rc, out, err = run(cli, ["classify", "--model", "viaserve", "a gorgeous film"], saddr)
        check(rc == 0 and json.loads(out).get("model_version") == 1, "the serve replica classifies with it")
        rc0, out0, err0 = run(cli, ["classify", "--model", "sst2@canary", "fine"], saddr)
        rc, out, err = run(cli, ["alias", "sst2", "canary", "1"], taddr)
        rc2, out2, err2 = run(cli, ["classify", "--model", "sst2@canary", "fine"], saddr)
        check(rc0 != 0 and "NOT_FOUND" in err0 and rc == 0 and rc2 == 0 and json.loads(out2)["model_version"] == 1,
              "an alias set through the train worker serves on the serve replica at its next call")
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", dataset,
                                 "--name", "long", "--max-steps", "100000", "--batch-size", "8",
                                 "--max-length", "48", "--json"], saddr)
        long_job = json.loads(out)["job_id"] if rc == 0 else ""
        deadline = time.time() + 60
        while time.time() < deadline and pg.psql(
                "berth", "SELECT state FROM jobs WHERE id = '%s'" % long_job) != "RUNNING":
            time.sleep(0.1)
        rc, out, err = run(cli, ["cancel", long_job], saddr)
        rc, out, err = run(cli, ["watch", long_job, "--json"], saddr, timeout=120)
        final = json.loads(out) if out else {}
        check(final.get("state") == "JOB_STATE_CANCELLED",
              "a cancel through the serve replica stops the job on the train worker: %s" % final.get("state"))

        # Three more serve replicas behind one round-robin target (ipv4:A,B,C): open-loop
        # Classify load reaches all; then one is killed with SIGKILL mid-run and retries (3
        # attempts) take its calls to the others, so none fails.
        def replica(name):
            d = os.path.join(work, name)
            os.makedirs(d)
            a = list(args)
            a[a.index("--metrics-listen") + 1] = "127.0.0.1:0"
            p, addr = start_server(server_bin, d, a + ["--metrics-port-file", os.path.join(d, "metrics-port"),
                                                      "--role", "serve", "--preload", "viaserve"])
            procs.append(p)
            return p, addr, d

        def classified(d):
            port = open(os.path.join(d, "metrics-port")).read().strip()
            body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10).read().decode()
            return sum(float(l.split()[-1]) for l in body.splitlines() if l.startswith("berth_classify_texts_total"))

        a_proc, a_addr, a_dir = replica("replica-a")
        b_proc, b_addr, b_dir = replica("replica-b")
        c_proc, c_addr, c_dir = replica("replica-c")
        target = "ipv4:%s,%s,%s" % (a_addr, b_addr, c_addr)
        p = subprocess.run([cli, "loadtest", "--server", target, "--model", "viaserve", "--rate", "40",
                            "--duration", "3"], capture_output=True, timeout=120)
        load = json.loads(p.stdout) if p.returncode == 0 else {}
        shares = (classified(a_dir), classified(b_dir), classified(c_dir))
        print("round robin over 3 replicas: %s calls OK, served %d / %d / %d, latency %s" %
              ((load.get("codes", {}).get("OK"),) + shares + (load.get("latency_ms"),)))
        check(p.returncode == 0 and load.get("unexpected") == 0 and min(shares) > 0,
              "round-robin load reaches all three replicas: " + p.stderr.decode()[-300:])
        before = shares
        lt = subprocess.Popen([cli, "loadtest", "--server", target, "--model", "viaserve", "--rate", "40",
                               "--duration", "6", "--max-attempts", "3"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        time.sleep(2)
        b_proc.kill()
        b_proc.wait()
        out, err = lt.communicate(timeout=120)
        load = json.loads(out) if lt.returncode == 0 else {}
        served = (classified(a_dir) - before[0], classified(c_dir) - before[2])
        print("a replica killed under load: codes %s, latency %s; of the run's 240 calls, a served %d, c %d, "
              "the killed b the rest" % (load.get("codes"), load.get("latency_ms"), served[0], served[1]))
        check(lt.returncode == 0 and load.get("unexpected") == 0 and load.get("codes", {}).get("OK") == 240,
              "a replica killed with SIGKILL mid-load: every call answered after retries: " + err.decode()[-300:])
        for p in (serve, trainer, a_proc, c_proc):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        check(pg.psql("berth", "SELECT count(*) FROM jobs WHERE state IN ('QUEUED', 'RUNNING')") == "0",
              "nothing left queued or running")

        # An unreachable database: the server does not start, and says where (not the password).
        bad = ["--data-dir", os.path.join(work, "data2"), "--store",
               "postgresql://berth:sekrit@127.0.0.1:1/berth?connect_timeout=2", "--metrics-listen", ""]
        p = subprocess.run([server_bin, "--listen", "127.0.0.1:0"] + bad, capture_output=True, timeout=60)
        msg = p.stderr.decode() + p.stdout.decode()
        check(p.returncode != 0 and "127.0.0.1:1" in msg and "sekrit" not in msg,
              "an unreachable --store stops the server, named without its password: " + msg[-300:])
        p = subprocess.run([server_bin, "--help"], capture_output=True)
        check(p.returncode == 0 and b"--store" in p.stdout and b"BERTH_STORE" in p.stdout and b"--role" in p.stdout,
              "--help shows --store and --role")
    finally:
        for p in procs + ([proc] if proc is not None else []):
            if p.poll() is None:
                p.kill()
                p.wait()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    print("store postgresql: all checks passed" if not failures else "store postgresql: %d checks failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
