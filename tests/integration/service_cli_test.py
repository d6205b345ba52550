#!/usr/bin/env python3
"""The service as its users meet it: `berth-server` as a process on 127.0.0.1:0 and the `berth`
remote commands. Upload → train --watch → classify gives the labels and scores of
`berth predict` on the saved model directory; a server killed with SIGKILL mid-training resumes
the job from its checkpoint after a restart and still registers exactly one version; the demo
runs; SIGTERM stops the server cleanly; `berth-client` (the remote commands without LibTorch)
links no libtorch and answers as `berth` does.

usage: service_cli_test.py PATH/TO/berth-server PATH/TO/berth DATA_DIR FIXTURES_DIR PATH/TO/berth-client
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from checks import check, failures, start_server


class Server:
    def __init__(self, binary, data_dir, work, model_roots):
        self.binary, self.data_dir, self.work, self.model_roots = binary, data_dir, work, model_roots
        self.proc = None
        self.port = None

    def start(self):
        self.proc, addr = start_server(self.binary, self.work,
                                       ["--data-dir", self.data_dir, "--metrics-listen", "127.0.0.1:0",
                                        "--model-roots", self.model_roots, "--training-threads", "1",
                                        "--inference-threads", "1"])
        self.port = int(addr.rsplit(":", 1)[1])
        return addr


def run(cli, args, server, stdin=None, timeout=300):
    p = subprocess.run([cli] + args + ["--server", server], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main():
    server_bin, cli, data, fixtures, thin = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    work = tempfile.mkdtemp(prefix="berth-svc-")
    server = Server(server_bin, os.path.join(work, "data"), work, os.path.abspath(fixtures))
    try:
        addr = server.start()
        # A small slice of the shipped SST-2 sample keeps this quick.
        with open(os.path.join(data, "sst2-sample", "train.tsv")) as f:
            lines = f.read().splitlines()
        train = os.path.join(work, "train.tsv")
        with open(train, "w") as f:
            f.write("\n".join(lines[:241]) + "\n")
        with open(os.path.join(data, "sst2-sample", "validation.tsv")) as f:
            texts = [l.split("\t")[0] for l in f.read().splitlines()[1:31]]
        texts_file = os.path.join(work, "texts.txt")
        with open(texts_file, "w") as f:
            f.write("\n".join(texts) + "\n")

        # upload → train → watch → classify
        rc, out, err = run(cli, ["upload", train], addr)
        check(rc == 0, "upload exits 0: " + err[-300:])
        up = json.loads(out)
        check(up["rows"] == "240" and len(up["dataset_id"]) == 64, "upload reports rows and a content id")
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", up["dataset_id"],
                                 "--validation-split", "0.2", "--name", "sst2", "--max-steps", "30",
                                 "--batch-size", "8", "--max-length", "48", "--watch", "--json"], addr)
        check(rc == 0, "train --watch exits 0: " + err[-500:])
        final = json.loads(out)
        check(final["state"] == "JOB_STATE_SUCCEEDED" and final["model_version"] == "1",
              "the job succeeded with version 1")
        check("RUNNING" in err and "SUCCEEDED" in err, "watch shows the states on stderr")

        rc, out, err = run(cli, ["classify", "--model", "sst2", "--file", texts_file], addr)
        check(rc == 0, "classify exits 0: " + err[-300:])
        remote = [json.loads(l) for l in out.splitlines()]
        check(len(remote) == len(texts), "classify prints one line per text")
        model_dir = os.path.join(work, "data", "models", "sst2", "1")
        p = subprocess.run([cli, "predict", "--model", model_dir], input=("\n".join(texts) + "\n").encode(),
                           capture_output=True, timeout=120)
        check(p.returncode == 0, "berth predict on the saved model directory exits 0")
        local = [json.loads(l) for l in p.stdout.decode().splitlines()]
        check([r["label"] for r in remote] == [l["label"] for l in local],
              "classify labels equal berth predict labels on the saved directory")
        worst = max(abs(r["scores"][lab] - l["probabilities"][i])
                    for r, l in zip(remote, local) for i, lab in enumerate(sorted(r["scores"], key=int)))
        check(worst < 1e-5, "classify scores equal berth predict probabilities (worst %.2e)" % worst)
        rc, out, err = run(cli, ["classify", "--model", "sst2", "--top-k", "1", "great film"], addr)
        check(rc == 0 and len(json.loads(out)["top_k"]) == 1, "classify takes texts as arguments, with --top-k")
        rc, out, err = run(cli, ["classify", "--model", "sst2:9", "x"], addr)
        check(rc != 0 and "NOT_FOUND" in err, "classify of a missing version fails with NOT_FOUND")

        # kill -9 mid-training, restart, the job resumes and succeeds once.
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", up["dataset_id"],
                                 "--name", "resumable", "--max-steps", "400", "--save-steps", "20",
                                 "--batch-size", "8", "--max-length", "48", "--json"], addr)
        check(rc == 0, "train (no watch) exits 0")
        job = json.loads(out)["job_id"]
        seen = 0
        deadline = time.time() + 120
        while time.time() < deadline:
            rc, out, err = run(cli, ["status", job, "--json"], addr)
            st = json.loads(out) if rc == 0 else {}
            seen = int(st.get("progress", {}).get("update", "0"))
            if st.get("state") == "JOB_STATE_RUNNING" and seen >= 50:
                break
            time.sleep(0.1)
        check(seen >= 50, "the job made progress before the kill (update %d)" % seen)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        ckpt = os.path.join(work, "data", "jobs", job, "checkpoints-1", "latest")
        check(os.path.exists(ckpt), "a checkpoint survived the kill")
        addr = server.start()
        lowest = None
        deadline = time.time() + 60
        while time.time() < deadline:
            rc, out, err = run(cli, ["status", job, "--json"], addr)
            st = json.loads(out) if rc == 0 else {}
            if st.get("state") == "JOB_STATE_RUNNING" and st.get("progress"):
                u = int(st["progress"]["update"])
                lowest = u if lowest is None else min(lowest, u)
            if st.get("state") == "JOB_STATE_SUCCEEDED":
                break
            time.sleep(0.1)
        check(lowest is None or lowest >= 40, "after the restart the job continued from its checkpoint (lowest "
              "update seen %s)" % lowest)
        rc, out, err = run(cli, ["watch", job, "--json"], addr)
        final = json.loads(out) if out else {}
        check(rc == 0 and final.get("state") == "JOB_STATE_SUCCEEDED" and final.get("model_version") == "1",
              "the resumed job succeeded with version 1: " + err[-300:])
        # The status polls above may miss the resumed run if it is quick; the store's own record
        # of the job cannot: the runner logs a "resumed" event when it restarts from a checkpoint.
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(work, "data", "berth.db"), uri=True)
        resumed = db.execute("SELECT count(*) FROM job_events WHERE job_id = ? AND kind = 'resumed'", (job,)).fetchone()[0]
        db.close()
        check(resumed == 1, "the store records that the job resumed from its checkpoint once (%d)" % resumed)
        rc, out, err = run(cli, ["models", "--json"], addr)
        versions = [m for m in json.loads(out)["models"] if m["name"] == "resumable"]
        check(len(versions) == 1, "exactly one version of the resumed model")
        check(sorted(os.listdir(os.path.join(work, "data", "models", "resumable"))) == ["1"],
              "exactly one model directory on disk")
        rc, out, err = run(cli, ["jobs", "--json"], addr)
        check(rc == 0 and [j["job_id"] for j in json.loads(out)["jobs"]].count(job) == 1, "the job is listed once")

        # XLM-R in the server binary: the SentencePiece module loads next to gRPC and libtorch.
        emotion = os.path.join(work, "emotion.jsonl")
        with open(os.path.join(data, "emotion-sample", "train.jsonl")) as f:
            rows = f.read().splitlines()[:200]
        with open(emotion, "w") as f:
            f.write("\n".join(rows) + "\n")
        rc, out, err = run(cli, ["train", "--base-model", os.path.abspath(os.path.join(fixtures, "xlmr-tiny")),
                                 "--train", emotion, "--name", "emo", "--max-steps", "10", "--batch-size", "8",
                                 "--max-length", "64", "--watch", "--json"], addr)
        final = json.loads(out) if out else {}
        check(rc == 0 and final.get("state") == "JOB_STATE_SUCCEEDED", "the server fine-tunes XLM-R: " + err[-300:])
        rc, out, err = run(cli, ["classify", "--model", "emo", "¡Qué alegría! 😀", "so angry"], addr)
        lines = [json.loads(l) for l in out.splitlines()]
        check(rc == 0 and len(lines) == 2 and all(l["label"] in ("anger", "joy", "optimism", "sadness") for l in lines),
              "the server classifies with XLM-R")

        # The thin client: no LibTorch in its process, the same answers as `berth`.
        ldd = subprocess.run(["ldd", thin], capture_output=True, text=True)
        torch_libs = [l.split()[0] for l in ldd.stdout.splitlines() if "libtorch" in l or "libc10" in l]
        check(ldd.returncode == 0 and not torch_libs, "berth-client links no LibTorch: %s" % torch_libs)
        rc_thin, out_thin, err_thin = run(thin, ["classify", "--model", "emo", "¡Qué alegría! 😀", "so angry"], addr)
        check(rc_thin == 0 and out_thin == out, "berth-client classifies as berth does: " + err_thin[-300:])

        # The README's second step.
        # (From random weights here, for speed; demo_test.py runs the default, the pretrained MiniLM.)
        rc, out, err = run(cli, ["demo", "--epochs", "1", "--base-model", "config:bert-tiny"], addr, timeout=600)
        lines = [json.loads(l) for l in out.splitlines()]
        check(rc == 0 and len(lines) == 4 and all("label" in l and "text" in l for l in lines),
              "berth demo trains and classifies: " + err[-300:])
        check("validation accuracy" in err, "berth demo reports its validation accuracy: " + err[-300:])

        # Aliases and deletion from the command line.
        rc, out, err = run(cli, ["alias", "sst2", "production", "1"], addr)
        check(rc == 0, "alias exits 0")
        rc, out, err = run(cli, ["classify", "--model", "sst2@production", "fine"], addr)
        check(rc == 0 and json.loads(out)["model_version"] == 1, "classify by alias")
        rc, out, err = run(cli, ["delete-model", "sst2"], addr)
        check(rc == 0 and not os.path.exists(model_dir), "delete-model removes the files")

        # Errors are clear and quick.
        t0 = time.time()
        rc, out, err = run(cli, ["models"], "127.0.0.1:1", timeout=60)
        check(rc != 0 and "UNAVAILABLE" in err and time.time() - t0 < 30, "an unreachable server fails fast")
        rc, out, err = run(cli, ["train", "--base-model", "config:bert-tiny", "--train", up["dataset_id"],
                                 "--name", "bad/name"], addr)
        check(rc == 2 and "model_name" in err, "an invalid name is refused and named")
        for cmd in ["upload", "train", "status", "watch", "cancel", "jobs", "classify", "models", "model", "alias",
                    "delete-model", "demo"]:
            for binary in (cli, thin):
                p = subprocess.run([binary, cmd, "--help"], capture_output=True)
                check(p.returncode == 0 and b"--server" in p.stdout, "%s %s --help" % (os.path.basename(binary), cmd))
        p = subprocess.run([server_bin, "--help"], capture_output=True)
        check(p.returncode == 0 and b"BERTH_DATA_DIR" in p.stdout, "berth-server --help shows environment variables")

        server.proc.send_signal(signal.SIGTERM)
        check(server.proc.wait(timeout=60) == 0, "SIGTERM stops the server with status 0")
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.kill()
        if failures:
            sys.stdout.write(open(os.path.join(work, "server.log"), errors="replace").read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("service CLI: all checks passed" if not failures else "service CLI: %d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
