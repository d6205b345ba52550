"""The SDK against a real berth-server started on loopback (paths from the environment that
ctest sets: BERTH_SERVER_BIN, BERTH_CLI, BERTH_FIXTURES, BERTH_DATA).

Answers are held to the C++ CLI's on the same server through gRPC (another door, the same
engine): JSON carries floats with 9 significant digits, so scores agree within 1e-6."""
from __future__ import annotations

import asyncio
import hashlib
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
import uuid
from collections.abc import Iterator
from typing import Any

import datasets  # type: ignore[import-untyped]
import pandas as pd  # type: ignore[import-untyped]
import pytest

import berth

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "integration"))
from checks import start_server  # type: ignore[import-not-found]  # noqa: E402

CLI = os.environ.get("BERTH_CLI", "")
FIXTURES = os.environ.get("BERTH_FIXTURES", "")
DATA = os.environ.get("BERTH_DATA", "")
TEXTS = ["a gorgeous, witty movie", "a dull mess", "Café au lait 😍", "東京は日本の首都です"]
MAX_TEXTS = 3  # below len(TEXTS): the client must chunk


class Server:
    def __init__(self, work: str, extra: list[str]) -> None:
        self.work = work
        self.proc, self.grpc = start_server(os.environ["BERTH_SERVER_BIN"], work, [
            "--data-dir", os.path.join(work, "data"), "--model-roots", FIXTURES,
            "--max-texts", str(MAX_TEXTS), "--metrics-listen", "127.0.0.1:0"] + extra)
        self.url = "http://127.0.0.1:%s" % open(os.path.join(work, "http-port")).read().strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    work = tempfile.mkdtemp(prefix="berth-sdk-")
    s = Server(work, [])
    try:
        p = subprocess.run([CLI, "import-model", "tiny", "--server", s.grpc, "--server-dir",
                            os.path.join(FIXTURES, "bert-tiny-uncased")], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        yield s
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def cli_classify(server: Server, texts: list[str]) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(texts), MAX_TEXTS):  # the CLI sends its texts in one request
        p = subprocess.run([CLI, "classify", "--server", server.grpc, "--model", "tiny"] + texts[i:i + MAX_TEXTS],
                           capture_output=True, text=True, check=True)
        out += [json.loads(line) for line in p.stdout.splitlines()]
    return out


def test_classify_equals_the_cli(server: Server) -> None:
    client = berth.Berth(server.url, model="tiny")
    got = client.classify(TEXTS)
    want = cli_classify(server, TEXTS)
    assert len(got) == len(TEXTS)  # more texts than --max-texts: sent in chunks
    for g, w in zip(got, want):
        assert isinstance(g, berth.Classification)
        assert g.label == w["label"]
        want_scores = w["scores"]
        assert set(g.scores) == set(want_scores)
        for label, score in g.scores.items():
            assert abs(score - want_scores[label]) <= 1e-6
    one = client.classify(TEXTS[0])
    assert isinstance(one, berth.Classification) and one.label == got[0].label
    assert len(client.classify(TEXTS[0], top_k=1).scores) == 1
    raw = client.classify(TEXTS[0], raw_scores=True)
    assert abs(sum(raw.scores.values()) - 1) > 1e-3  # logits, not probabilities
    pair = client.classify(("a movie", "it is great"))
    assert isinstance(pair, berth.Classification) and pair.label in got[0].scores


def test_tokenize_and_embed(server: Server) -> None:
    client = berth.Berth(server.url)
    toks = client.tokenize("Hello world!", model="tiny")
    assert [t.text for t in toks] == ["[CLS]", "hello", "world", "!", "[SEP]"]
    assert toks[0].special and not toks[1].special
    many = client.embed(TEXTS, model="tiny", normalize=True)
    assert len(many) == len(TEXTS) and all(len(e) == 64 for e in many)  # bert-tiny's hidden size
    assert all(abs(sum(x * x for x in e) - 1) < 1e-5 for e in many)
    assert client.embed(TEXTS[1], model="tiny", normalize=True) == pytest.approx(many[1], abs=1e-6)
    assert len(client.embed("x", model="tiny", dimensions=16)) == 16


def test_typed_errors(server: Server) -> None:
    client = berth.Berth(server.url)
    with pytest.raises(berth.NotFound):
        client.classify("x", model="no-such-model")
    with pytest.raises(berth.InvalidArgument) as e:
        client.embed("x", model="tiny", dimensions=65)
    assert e.value.field == "dimensions" and e.value.status == 422
    with pytest.raises(berth.InvalidArgument):
        client.classify("word " * 2000, model="tiny")  # too long without truncate
    with pytest.raises(berth.NotFound):
        client.get_job("no-such-job")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    with pytest.raises(berth.Unavailable):
        berth.Berth(dead, retries=1).models()
    with pytest.raises(berth.DeadlineExceeded):
        berth.Berth(server.url, timeout=1e-4, retries=0).classify(TEXTS * 50, model="tiny")


def test_replicas_round_robin_past_a_dead_one(server: Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    client = berth.Berth([dead, server.url], retries=3)
    for _ in range(4):  # each call that meets the dead replica is retried on the live one
        assert client.classify(TEXTS[0], model="tiny").label


class DroppingProxy:
    """A TCP proxy to `port` that relays everything, except that the first POST /v1/jobs it
    carries reaches the server and its answer does not: the proxy reads the server's response
    and closes the client's connection instead (a connection dropped after the server acted)."""

    def __init__(self, port: int, drop: bool = True) -> None:
        self.port, self.dropped = port, 0 if drop else 1
        self.heads: list[bytes] = []  # the start of every request it carried
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            state = {"drop": False}
            threading.Thread(target=self._pipe, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, state, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, state: dict[str, bool], to_server: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_server and data.split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"DELETE"):
                    self.heads.append(data[:4096])
                if to_server and data.startswith(b"POST /v1/jobs ") and self.dropped == 0:
                    state["drop"] = True
                if not to_server and state["drop"]:
                    self.dropped += 1  # the server answered; the client never hears it
                    state["drop"] = False
                    dst.shutdown(socket.SHUT_RDWR)
                    dst.close()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_an_idempotent_create_retried_after_a_dropped_connection_is_one_job(server: Server) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = DroppingProxy(port)
    try:
        client = berth.Berth(proxy.url, retries=3)
        ds = client.upload_dataset([{"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 4)])
        job = client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-dropped", max_steps=4, batch_size=4)
        assert proxy.dropped == 1  # the first answer was lost: the job came from the retry
        direct = berth.Berth(server.url)
        made = [j for j in direct.list_jobs() if j["model_name"] == "sdk-dropped"]
        assert [j["job_id"] for j in made] == [job["job_id"]]  # one job, not two
        assert direct.wait(job["job_id"])["state"] == berth.JobState.JOB_STATE_SUCCEEDED
        direct.delete_model("sdk-dropped")
    finally:
        proxy.close()


def test_a_replica_killed_mid_call() -> None:
    """Two replicas serving the same model; one is killed with SIGKILL while calls run. Every
    call still answers: a call cut off on the dead one is retried on the other."""
    works = [tempfile.mkdtemp(prefix="berth-sdk-replica-") for _ in range(2)]
    servers = [Server(w, []) for w in works]
    try:
        for s in servers:
            p = subprocess.run([CLI, "import-model", "tiny", "--server", s.grpc, "--server-dir",
                                os.path.join(FIXTURES, "bert-tiny-uncased")], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
        client = berth.Berth([s.url for s in servers], model="tiny", retries=5)
        want = [c.label for c in client.classify(TEXTS * 6)]
        errors: list[BaseException] = []
        answers: list[list[str]] = []

        def calls() -> None:
            try:
                for _ in range(20):
                    answers.append([c.label for c in client.classify(TEXTS * 6)])
            except BaseException as e:  # noqa: B902 - reported below
                errors.append(e)

        worker = threading.Thread(target=calls)
        worker.start()
        while len(answers) < 3 and worker.is_alive():
            time.sleep(0.01)
        servers[0].proc.kill()
        worker.join(timeout=120)
        assert not errors, errors
        assert len(answers) == 20 and all(a == want for a in answers)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
            else:
                s.proc.wait()
        for w in works:
            shutil.rmtree(w, ignore_errors=True)


def test_auth_errors() -> None:
    work = tempfile.mkdtemp(prefix="berth-sdk-auth-")
    tokens = os.path.join(work, "tokens.jsonl")
    with open(tokens, "w") as f:
        for who, role in [("reader", "classify"), ("admin", "admin")]:
            f.write(json.dumps({"id": who, "sha256": hashlib.sha256(who.encode()).hexdigest(), "role": role}) + "\n")
    s = Server(work, ["--auth-tokens", tokens, "--allow-insecure"])
    try:
        with pytest.raises(berth.Unauthenticated):
            berth.Berth(s.url).models()
        with pytest.raises(berth.Unauthenticated):
            berth.Berth(s.url, token="wrong").models()
        assert berth.Berth(s.url, token="reader").models() == []
        with pytest.raises(berth.PermissionDenied):
            berth.Berth(s.url, token="reader").upload_dataset([{"text": "a", "label": "x"}])
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_train_from_a_dataframe(server: Server) -> None:
    client = berth.Berth(server.url)
    frame = pd.read_csv(os.path.join(DATA, "sst2-sample", "train.tsv"), sep="\t").head(120)
    ds = client.upload_dataset(frame, text_column="sentence")
    assert int(ds["rows"]) == 120 and len(ds["dataset_id"]) == 64
    assert client.upload_dataset(frame, text_column="sentence")["dataset_id"] == ds["dataset_id"]
    key = uuid.uuid4().hex
    spec: dict[str, Any] = dict(text_column="sentence", validation_split=0.25, max_steps=8, batch_size=8, max_length=48)
    job = client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-sst2", idempotency_key=key, **spec)
    again = client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-sst2", idempotency_key=key, **spec)
    assert again["job_id"] == job["job_id"]  # a retried create is one job
    assert any(j["job_id"] == job["job_id"] for j in client.list_jobs())
    final = client.wait(job["job_id"], progress=True)
    assert final["state"] == "JOB_STATE_SUCCEEDED", final
    assert final["spec"]["hyperparameters"]["max_steps"] == "8"  # the spec, defaults filled in
    log = client.job_log(job["job_id"])
    points = [e["progress"] for e in log if e["kind"] == "progress"]
    assert log[0]["kind"] == "queued" and log[-1]["kind"] == "succeeded"
    assert points[-1]["update"] == "8" and all(float(p["grad_norm"]) > 0 for p in points)
    assert client.job_log(job["job_id"], after_id=int(log[-2]["id"])) == log[-1:]
    assert client.training_defaults()["hyperparameters"]["batch_size"] == "8"
    version = final["model_version"]
    assert client.classify("a gorgeous movie", model="sdk-sst2").label in ("0", "1")
    loaded = {(m["name"], m["version"]) for m in client.loaded_models()}
    assert ("sdk-sst2", str(version)) in loaded
    client.set_alias("sdk-sst2", "prod", version)
    assert str(client.get_model("sdk-sst2@prod")["version"]) == str(version)
    # Export, import the files under another name: the copy answers as the original.
    out = tempfile.mkdtemp(prefix="berth-sdk-export-")
    try:
        files = client.export_model("sdk-sst2@prod", out)
        assert "config.json" in files and os.path.exists(os.path.join(out, "config.json"))
        client.import_model("sdk-copy", out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    original = client.classify(TEXTS, model="sdk-sst2")
    copy = client.classify(TEXTS, model="sdk-copy")
    for c, o in zip(copy, original):
        assert c.scores == pytest.approx(o.scores, abs=1e-6)
    for name in ("sdk-sst2", "sdk-copy"):
        client.delete_model(name)
        with pytest.raises(berth.NotFound):
            client.get_model(name)


def test_async_client_trains_and_classifies(server: Server) -> None:
    async def run() -> None:
        client = berth.AsyncBerth(server.url)
        rows = [{"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(TEXTS * 10)]
        ds = await client.upload_dataset(rows)
        job = await client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-async", max_steps=6,
                                      batch_size=4, max_length=32, task=berth.Task.TASK_SINGLE_LABEL)
        kinds = [kind async for kind, _ in client.events(job["job_id"])]
        assert "progress" in kinds and kinds[-1] == "state"
        final = await client.wait(job["job_id"])
        assert final["state"] == berth.JobState.JOB_STATE_SUCCEEDED, final
        assert (await client.job_log(job["job_id"]))[-1]["kind"] == "succeeded"
        assert "learning_rate" in (await client.training_defaults())["hyperparameters"]
        labels = await asyncio.gather(*(client.classify(t, model="sdk-async") for t in TEXTS))
        assert all(c.label in ("neg", "pos") for c in labels)
        await client.delete_model("sdk-async")
    asyncio.run(run())


def test_ctrl_c_in_wait_cancels_the_job(server: Server) -> None:
    client = berth.Berth(server.url)
    rows = [{"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 10)]
    ds = client.upload_dataset(rows)
    job = client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-long", max_steps=100000, batch_size=4)
    # The waiter says it is ready once wait() follows the job's events (inside the call whose
    # Ctrl-C cancels), not before it: a signal between the two would find no wait() to cancel.
    code = ("import berth, sys\n"
            "c = berth.Berth(sys.argv[1])\n"
            "events = c.events\n"
            "def announced(job_id):\n"
            "    print('ready', flush=True)\n"
            "    yield from events(job_id)\n"
            "c.events = announced\n"
            "c.wait(sys.argv[2])\n")
    waiter = subprocess.Popen([sys.executable, "-c", code, server.url, job["job_id"]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert waiter.stdout is not None and waiter.stdout.readline() == "ready\n"
    for kind, status in client.events(job["job_id"]):  # until the job runs: its first progress
        if kind == "progress" or status.get("state") == berth.JobState.JOB_STATE_RUNNING:
            break
    waiter.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = waiter.communicate(timeout=60)
    assert waiter.returncode != 0 and "KeyboardInterrupt" in err
    # A running job stops at its next step, so follow it to its end (events, not a clock): it
    # ends cancelled, where without the waiter's cancel it would run its 100,000 steps.
    assert client.wait(job["job_id"])["state"] == berth.JobState.JOB_STATE_CANCELLED


def test_upload_a_hugging_face_dataset(server: Server) -> None:
    client = berth.Berth(server.url)
    rows = [{"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 4)]
    hf = datasets.Dataset.from_list(rows)
    up = client.upload_dataset(hf)
    assert int(up["rows"]) == len(rows) and up["label_counts"] == {"0": str(len(rows) // 2), "1": str(len(rows) // 2)}
    # The same rows as a list of dicts are the same bytes: the same dataset.
    assert client.upload_dataset(rows)["dataset_id"] == up["dataset_id"]


def test_failed_precondition_and_resource_exhausted() -> None:
    # Their own server: one queued job at most, and a registered base model to pin.
    work = tempfile.mkdtemp(prefix="berth-sdk-limits-")
    s = Server(work, ["--max-queued-jobs", "1"])
    try:
        client = berth.Berth(s.url, retries=0)
        client.import_model("sdk-base", os.path.join(FIXTURES, "bert-tiny-uncased"))
        ds = client.upload_dataset([{"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 10)])
        jobs = [client.create_job("sdk-base", ds["dataset_id"], "sdk-pinned", max_steps=1000000, batch_size=4)]
        # A job training from sdk-base pins it: deleting it is refused while the job lives.
        with pytest.raises(berth.FailedPrecondition) as refused:
            client.delete_model("sdk-base")
        assert refused.value.status == 409
        # The queue holds one job: by the third at the latest (the first may still be queued,
        # or running with the second queued), a create is refused with the server's limit.
        with pytest.raises(berth.ResourceExhausted) as full:
            for _ in range(2):
                jobs.append(client.create_job("config:bert-tiny", ds["dataset_id"], "sdk-queued",
                                              max_steps=1000000, batch_size=4))
        assert full.value.status == 429 and "queued" in full.value.message
        for job in jobs:
            client.cancel_job(job["job_id"])
        assert all(client.wait(j["job_id"])["state"] == berth.JobState.JOB_STATE_CANCELLED for j in jobs)
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_uploads_are_streamed_in_chunks(server: Server) -> None:
    # A file of several chunks (UPLOAD_CHUNK is 1 MiB) through a recording proxy: sent with
    # chunked transfer encoding and its SHA-256, it is stored whole, under that digest.
    lines = open(os.path.join(DATA, "sst2-sample", "train.tsv"), "rb").read().splitlines(keepends=True)
    path = os.path.join(tempfile.mkdtemp(prefix="berth-sdk-big-"), "big.tsv")
    with open(path, "wb") as f:
        f.write(lines[0] + b"".join(lines[1:]) * 25)
    size = os.path.getsize(path)
    assert size > 2.5 * berth._client.UPLOAD_CHUNK
    proxy = DroppingProxy(int(server.url.rsplit(":", 1)[1]), drop=False)
    try:
        up = berth.Berth(proxy.url).upload_dataset(path)
        head = [h for h in proxy.heads if h.startswith(b"POST /v1/datasets")][0].lower()
        assert b"transfer-encoding: chunked" in head and b"content-length" not in head.split(b"\r\n\r\n")[0]
        assert b"sha256=" in head
        assert int(up["bytes"]) == size and int(up["rows"]) == 25 * (len(lines) - 1)
        assert up["dataset_id"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
        # Rows too: a generator is read into a list first, and streamed as JSON Lines.
        rows = ({"text": t, "label": str(i % 2)} for i, t in enumerate(TEXTS * 4))
        assert int(berth.Berth(proxy.url).upload_dataset(rows)["rows"]) == len(TEXTS) * 4
    finally:
        proxy.close()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def test_the_example_script_runs(server: Server) -> None:
    # examples/finetune_sst2.py as a user runs it, bert-tiny for a few updates instead of MiniLM's
    # three epochs (the README's SDK block fine-tunes MiniLM in demo_minilm).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    script = os.path.join(root, "examples", "finetune_sst2.py")
    p = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "--base-model" in p.stdout
    p = subprocess.run([sys.executable, script, "--server", server.url, "--base-model", "config:bert-tiny",
                        "--max-steps", "6", "--model-name", "sdk-example", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["model"] == "sdk-example:1" and out["examples"] == 200 and 0 <= out["accuracy"] <= 1
    assert [c["label"] in ("0", "1") for c in out["classified"]] == [True, True]
    client = berth.Berth(server.url)
    assert str(client.get_model("sdk-example@prod")["version"]) == "1"
    client.delete_model("sdk-example")


def test_a_broken_dataset_names_its_line(server: Server) -> None:
    with pytest.raises(berth.InvalidArgument) as e:
        berth.Berth(server.url).upload_dataset([{"text": "fine", "label": "1"}, {"text": "", "label": "0"}])
    assert e.value.field is not None and e.value.field.endswith(":2"), e.value.message
