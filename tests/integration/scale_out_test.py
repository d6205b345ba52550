#!/usr/bin/env python3
"""Scale-out on PostgreSQL: several berth-server processes (serve replicas and train workers,
each with its own --worker-id and a 2 s --job-lease) share one PostgreSQL this test starts on
loopback and one data directory.

  1. exactly-once claims: 20 jobs submitted at once through two serve replicas each run once
     (attempt 1, no rescue) on two train workers, and each succeeds with one version;
  2. kill -9 mid-training: the worker running a job is killed; the other rescues the job when
     the lease expires and resumes it from its checkpoint; one version. Prints the time to
     resume;
  3. a partitioned worker: a worker stopped (SIGSTOP) for longer than its lease loses the job to
     the other; continued (SIGCONT), it notices, writes nothing (no version, no checkpoint
     removal), and the job succeeds once;
  4. an alias switched through one serve replica is what another serves within 1 s, with four
     threads classifying through it and no call failing; a version deleted through one replica
     is unloaded by the other, which heard of it through PostgreSQL NOTIFY;
  5. PostgreSQL down for several seconds mid-run: calls meanwhile fail UNAVAILABLE (never
     INTERNAL), the processes reconnect, and the running job (which finishes training while the
     database is down) and the queued ones succeed once each.

usage: scale_out_test.py PATH/TO/berth-server PATH/TO/berth DATA_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from checks import Postgres, check, failures, start_server

LEASE = 2.0  # seconds: --job-lease of every process here


def run(cli, args, server, timeout=300):
    p = subprocess.run([cli] + args + ["--server", server], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    server_bin, cli, data = sys.argv[1], sys.argv[2], sys.argv[3]
    work = tempfile.mkdtemp(prefix="berth-scaleout-")
    pg = Postgres()
    procs = {}
    try:
        pg.psql("postgres", "CREATE DATABASE berth")
        sql = lambda q: pg.psql("berth", q)
        common = ["--data-dir", os.path.join(work, "data"), "--store", pg.url("berth"), "--metrics-listen", "",
                  "--training-threads", "1", "--inference-threads", "1", "--job-lease", str(LEASE)]

        def start(name, role, metrics=False):
            d = os.path.join(work, name)
            os.makedirs(d, exist_ok=True)
            args = list(common)
            if metrics:
                args[args.index("--metrics-listen") + 1] = "127.0.0.1:0"
                args += ["--metrics-port-file", os.path.join(d, "metrics-port")]
            p, addr = start_server(server_bin, d, args + ["--role", role, "--worker-id", name])
            procs[name] = (p, addr, d)
            return addr

        def metric(name, series):
            port = open(os.path.join(procs[name][2], "metrics-port")).read().strip()
            body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10).read().decode()
            return sum(float(l.split()[-1]) for l in body.splitlines() if l.startswith(series))

        def log(name):
            with open(os.path.join(procs[name][2], "server.log"), errors="replace") as f:
                return f.read()

        serve_a, serve_b = start("serve-a", "serve"), start("serve-b", "serve", metrics=True)
        start("train-1", "train")
        start("train-2", "train")

        with open(os.path.join(data, "sst2-sample", "train.tsv")) as f:
            lines = f.read().splitlines()
        train = os.path.join(work, "train.tsv")
        with open(train, "w") as f:
            f.write("\n".join(lines[:161]) + "\n")
        rc, out, err = run(cli, ["upload", train], serve_a)
        check(rc == 0, "upload through a serve replica: " + err[-300:])
        dataset = json.loads(out)["dataset_id"] if rc == 0 else ""

        def submit(addr, name, steps, extra=()):
            rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", dataset, "--name", name,
                                     "--max-steps", str(steps), "--batch-size", "8", "--max-length", "32",
                                     "--json"] + list(extra), addr)
            return json.loads(out)["job_id"] if rc == 0 else None

        def wait_state(job, states, timeout):
            deadline = time.time() + timeout
            while time.time() < deadline:
                st = sql("SELECT state FROM jobs WHERE id = '%s'" % job)
                if st in states:
                    return st
                time.sleep(0.05)
            return sql("SELECT state FROM jobs WHERE id = '%s'" % job)

        # 1. Exactly-once claims.
        ids, lock = [], threading.Lock()

        def submit_one(i):
            job = submit(serve_a if i % 2 == 0 else serve_b, "once-%02d" % i, 4)
            with lock:
                ids.append(job)

        threads = [threading.Thread(target=submit_one, args=(i,)) for i in range(20)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(len(ids) == 20 and None not in ids, "20 jobs submitted at once through two serve replicas")
        ends = [wait_state(j, ("SUCCEEDED", "FAILED", "CANCELLED"), 300) for j in ids if j]
        rows = sql("SELECT id, attempt, lease_owner, model_version FROM jobs WHERE model_name LIKE 'once-%'")
        rows = [r.split("|") for r in rows.splitlines()]
        owners = sorted({r[2] for r in rows})
        versions = sql("SELECT name, count(*) FROM models WHERE name LIKE 'once-%' GROUP BY name")
        per_model = [int(v.split("|")[1]) for v in versions.splitlines()]
        requeued = sql("SELECT count(*) FROM job_events WHERE kind = 'requeued'")
        print("exactly once: 20 jobs in %.1f s, run by %s" % (time.time() - t0, owners))
        check(ends.count("SUCCEEDED") == 20, "all 20 succeed (%s)" % sorted(set(ends)))
        check(all(r[1] == "1" for r in rows) and requeued == "0",
              "each ran once: attempt 1, none rescued (%s requeued)" % requeued)
        check(len(per_model) == 20 and set(per_model) == {1}, "one version each (%s)" % per_model)
        check(owners == ["train-1", "train-2"], "both train workers claimed jobs (%s)" % owners)

        # 2. kill -9 the worker running a job; the other resumes it from its checkpoint.
        job = submit(serve_a, "killed", 400, ["--save-steps", "10"])
        deadline, update = time.time() + 120, 0
        while time.time() < deadline:
            prog = sql("SELECT progress FROM jobs WHERE id = '%s'" % job)
            update = json.loads(prog).get("update", 0) if prog else 0
            if update >= 25:
                break
            time.sleep(0.05)
        owner = sql("SELECT lease_owner FROM jobs WHERE id = '%s'" % job)
        check(update >= 25 and owner in ("train-1", "train-2"), "the job trains on %s (update %d)" % (owner, update))
        other = "train-2" if owner == "train-1" else "train-1"
        victim = procs[owner][0]
        victim.kill()
        victim.wait()
        killed_at = time.time()
        deadline = killed_at + 60
        while time.time() < deadline and sql("SELECT lease_owner || '|' || state FROM jobs WHERE id = '%s'" % job) \
                != other + "|RUNNING":
            time.sleep(0.05)
        resumed_after = time.time() - killed_at
        rc, out, err = run(cli, ["watch", job, "--json"], serve_b)
        final = json.loads(out) if out else {}
        print("kill -9 mid-training: resumed on %s %.2f s after the kill (lease %.0f s)" % (other, resumed_after, LEASE))
        check(final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the job a killed worker ran succeeds with version 1 on the other: " + err[-300:])
        check(resumed_after < 3 * LEASE, "it resumed within three leases of the kill (%.2f s)" % resumed_after)
        check(sql("SELECT count(*) FROM job_events WHERE job_id = '%s' AND kind = 'resumed'" % job) == "1",
              "it resumed from the killed worker's checkpoint")
        check(sql("SELECT attempt FROM jobs WHERE id = '%s'" % job) == "2", "its second attempt")
        check(sql("SELECT count(*) FROM models WHERE name = 'killed'") == "1", "exactly one version")
        check(sql("SELECT count(*) FROM job_events WHERE job_id = '%s' AND kind = 'requeued' AND body LIKE "
                  "'%%%s%%lease%%'" % (job, owner)) == "1", "the rescue is in the job's events, naming the dead worker")
        start(owner, "train")  # back for what follows

        # 3. A worker stopped past its lease loses the job and, continued, writes nothing.
        job = submit(serve_a, "partitioned", 400, ["--save-steps", "10"])
        deadline = time.time() + 120
        while time.time() < deadline:
            prog = sql("SELECT progress FROM jobs WHERE id = '%s'" % job)
            if prog and json.loads(prog).get("update", 0) >= 15:
                break
            time.sleep(0.05)
        owner = sql("SELECT lease_owner FROM jobs WHERE id = '%s'" % job)
        other = "train-2" if owner == "train-1" else "train-1"
        stopped = procs[owner][0]
        stopped.send_signal(signal.SIGSTOP)
        deadline = time.time() + 60
        while time.time() < deadline and sql("SELECT lease_owner || '|' || attempt FROM jobs WHERE id = '%s'" % job) \
                != other + "|2":
            time.sleep(0.05)
        taken = sql("SELECT lease_owner || '|' || attempt FROM jobs WHERE id = '%s'" % job)
        check(taken == other + "|2", "%s takes the job while %s is stopped (%s)" % (other, owner, taken))
        stopped.send_signal(signal.SIGCONT)
        rc, out, err = run(cli, ["watch", job, "--json"], serve_b)
        final = json.loads(out) if out else {}
        check(final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the job succeeds once, with version 1: " + err[-300:])
        check(sql("SELECT count(*) FROM models WHERE name = 'partitioned'") == "1", "exactly one version")
        deadline = time.time() + 20
        while time.time() < deadline and "job.lease_lost" not in log(owner):
            time.sleep(0.1)
        check("job.lease_lost" in log(owner) and job in log(owner),
              "the continued worker noticed it lost the job's lease")
        check(stopped.poll() is None, "and is still up")
        rc, out, err = run(cli, ["jobs", "--json"], procs[owner][1])
        check(rc == 0, "it still answers: " + err[-200:])

        # 4. An alias switched through one replica is served by another within 1 s.
        for v in (1, 2):
            j = submit(serve_a, "flip", 4)
            check(wait_state(j, ("SUCCEEDED",), 120) == "SUCCEEDED", "flip version %d trained" % v)
        rc, out, err = run(cli, ["alias", "flip", "prod", "1"], serve_a)
        check(rc == 0, "alias flip@prod -> 1: " + err[-200:])
        results, stop = [], threading.Event()

        def classify():
            while not stop.is_set():
                started = time.time()
                rc, out, err = run(cli, ["classify", "--model", "flip@prod", "a gorgeous film"], serve_b, 60)
                with lock:
                    results.append((started, rc, json.loads(out).get("model_version") if rc == 0 else err))

        threads = [threading.Thread(target=classify) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2)
        switched = time.time()
        rc, out, err = run(cli, ["alias", "flip", "prod", "2"], serve_a)
        switch_done = time.time()
        # The load runs on until 8 calls have started a second or more after the switch (however
        # long each call takes on this machine), or two minutes.
        deadline = time.time() + 120
        while time.time() < deadline:
            with lock:
                if len([r for r in results if r[0] > switch_done + 1.0]) >= 8:
                    break
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        failed = [r for r in results if r[1] != 0]
        late_old = [r for r in results if r[0] > switch_done + 1.0 and r[2] != 2]
        after = [r for r in results if r[0] > switch_done + 1.0]
        first_new = min([r[0] for r in results if r[2] == 2] or [float("inf")]) - switched
        print("alias switch: %d calls by 4 threads, %d failed; version 2 first served %.3f s after the switch began"
              % (len(results), len(failed), first_new))
        check(rc == 0 and not failed, "no call fails across the switch (%s)" % failed[:3])
        check(len(after) >= 8 and not late_old,
              "every call on the other replica from 1 s after the switch serves version 2 (%d calls)" % len(after))
        # Version 1, loaded on serve-b, deleted through serve-a: serve-b unloads it.
        rc, out, err = run(cli, ["delete-model", "flip", "--version", "1"], serve_a)
        check(rc == 0, "delete flip:1 through serve-a: " + err[-200:])
        deadline = time.time() + 10
        while time.time() < deadline and "model.unloaded" not in log("serve-b"):
            time.sleep(0.1)
        check("model.unloaded" in log("serve-b") and "flip:1" in log("serve-b"),
              "serve-b drops the version another replica deleted")
        check(metric("serve-b", 'berth_registry_notifications_total{kind="delete"}') >= 1 and
              metric("serve-b", 'berth_registry_notifications_total{kind="alias"}') >= 2,
              "serve-b heard of the deletion and the alias switches through PostgreSQL NOTIFY")
        rc, out, err = run(cli, ["classify", "--model", "flip:1", "fine"], serve_b)
        check(rc != 0 and "NOT_FOUND" in err, "and answers NOT_FOUND for it")

        # 5. PostgreSQL restarted mid-run.
        running = submit(serve_a, "through-restart", 300, ["--save-steps", "10"])
        queued = [submit(serve_b, "queued-%d" % i, 4) for i in range(2)]
        wait_state(running, ("RUNNING",), 60)
        time.sleep(1)
        pg.stop()
        rc, out, err = run(cli, ["jobs"], serve_a, 60)
        rc2, out2, err2 = run(cli, ["classify", "--model", "flip", "fine"], serve_b, 60)
        print("while PostgreSQL is down: jobs -> %r, classify -> %r" % (err.strip()[-120:], err2.strip()[-120:]))
        check(rc != 0 and "UNAVAILABLE" in err and "INTERNAL" not in err,
              "a call while the database is down is UNAVAILABLE")
        check(rc2 != 0 and "UNAVAILABLE" in err2 and "INTERNAL" not in err2,
              "a Classify that must read the registry is UNAVAILABLE")
        # Down long enough for the running job to finish training meanwhile (its version is
        # recorded once the database is back) and for its 2 s lease to expire.
        time.sleep(5)
        pg.start()
        ends = [wait_state(j, ("SUCCEEDED", "FAILED", "CANCELLED"), 240) for j in [running] + queued]
        print("through the restart: the running job ended in attempt %s, rescued %s time(s)" % (
            sql("SELECT attempt FROM jobs WHERE id = '%s'" % running),
            sql("SELECT count(*) FROM job_events WHERE job_id = '%s' AND kind = 'requeued'" % running)))
        check(ends == ["SUCCEEDED"] * 3, "the running and the queued jobs succeed after the restart (%s)" % ends)
        counts = sql("SELECT name, count(*) FROM models WHERE name = 'through-restart' OR name LIKE 'queued-%' "
                     "GROUP BY name ORDER BY name")
        check(counts.splitlines() == ["queued-0|1", "queued-1|1", "through-restart|1"],
              "one version each (%s)" % counts.replace("\n", ", "))
        for name, (p, addr, d) in procs.items():
            check(p.poll() is None, "%s survived the database restart" % name)

        for name, (p, addr, d) in procs.items():
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        check(sql("SELECT count(*) FROM jobs WHERE state IN ('QUEUED', 'RUNNING')") == "0",
              "nothing left queued or running")
    finally:
        for p, addr, d in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    print("scale out: all checks passed" if not failures else "scale out: %d checks failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
