"""`Berth`: every operation of a berth-server, through its HTTP API."""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

from ._errors import BerthError
from ._generated import Hyperparameters, JobState, Task

if TYPE_CHECKING:
    from typing_extensions import Unpack
from ._transport import Transport
from ._types import Classification, RerankResult, Token

UPLOAD_CHUNK = 1 << 20  # bytes per chunk of a streamed upload

Text = Union[str, tuple[str, str]]  # a text, or a (text, text_pair) pair
DEFAULT_URL = "http://127.0.0.1:8080"
FINAL_STATES = (JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED)


def _quote(s: str) -> str:
    return urllib.parse.quote(s, safe="@:")


class Berth:
    """A client of one berth-server, or of several replicas called round-robin.

    Configured by arguments, else by the environment as the CLI is: BERTH_URL (the HTTP
    address; several separated by commas), BERTH_TOKEN, BERTH_TLS_CA, BERTH_TLS_CERT and
    BERTH_TLS_KEY. `timeout` is each call's deadline in seconds; `retries` how often an
    idempotent call is retried on UNAVAILABLE or RESOURCE_EXHAUSTED.
    """

    def __init__(self, url: str | Sequence[str] | None = None, *, token: str | None = None,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None,
                 timeout: float = 60.0, retries: int = 3, model: str | None = None) -> None:
        if url is None:
            url = os.environ.get("BERTH_URL", DEFAULT_URL)
        urls = [u.strip() for u in url.split(",")] if isinstance(url, str) else list(url)
        ca = tls_ca or os.environ.get("BERTH_TLS_CA")
        if ca:
            urls = [u if "://" in u else "https://" + u for u in urls]
        self._t = Transport(urls, token or os.environ.get("BERTH_TOKEN"), ca,
                            tls_cert or os.environ.get("BERTH_TLS_CERT"),
                            tls_key or os.environ.get("BERTH_TLS_KEY"), timeout, retries)
        self.model = model
        self._limits: dict[str, int] = {}

    # -- inference -------------------------------------------------------------------------

    def _prefix(self, model: str | None) -> str:
        m = model or self.model
        return "/models/%s" % _quote(m) if m else ""

    def info(self, model: str | None = None) -> dict[str, Any]:
        """TEI's /info of a model (the server's default without one)."""
        return dict(self._t.request("GET", self._prefix(model) + "/info"))

    def _chunk(self, model: str | None) -> int:
        key = model or self.model or ""
        if key not in self._limits:
            self._limits[key] = int(self.info(model).get("max_client_batch_size", 32))
        return self._limits[key]

    def _batched(self, items: Sequence[Any], model: str | None) -> Iterator[Sequence[Any]]:
        n = self._chunk(model)
        for i in range(0, len(items), n):
            yield items[i:i + n]

    def classify(self, texts: Text | Sequence[Text], model: str | None = None, *, top_k: int | None = None,
                 raw_scores: bool = False, truncate: bool = False) -> Any:
        """Classifies one text (returns a Classification) or many (a list); a text may be a
        (text, text_pair) tuple. Many texts are sent in chunks of the server's limit.
        `raw_scores`: each label's logit instead of its probability. `top_k`: only the best k
        labels in `scores`."""
        one = isinstance(texts, (str, tuple))
        items: list[Text] = [texts] if one else list(texts)  # type: ignore[list-item]
        out: list[Classification] = []
        for chunk in self._batched(items, model):
            inputs = [[t] if isinstance(t, str) else list(t) for t in chunk]
            reply = self._t.request("POST", self._prefix(model) + "/predict",
                                    {"inputs": inputs, "raw_scores": raw_scores, "truncate": truncate})
            for labels in reply:
                ranked = sorted(labels, key=lambda x: -x["score"])[:top_k]
                out.append(Classification(ranked[0]["label"], ranked[0]["score"],
                                          {x["label"]: x["score"] for x in ranked}))
        return out[0] if one else out

    def tokenize(self, texts: str | Sequence[str], model: str | None = None, *,
                 add_special_tokens: bool = True) -> Any:
        """The tokens the model sees: a list of Token for one text, a list of lists for many."""
        one = isinstance(texts, str)
        items = [texts] if one else list(texts)
        out: list[list[Token]] = []
        for chunk in self._batched(items, model):
            reply = self._t.request("POST", self._prefix(model) + "/tokenize",
                                    {"inputs": list(chunk), "add_special_tokens": add_special_tokens})
            out += [[Token(t["id"], t["text"], t["special"]) for t in toks] for toks in reply]
        return out[0] if one else out

    def embed(self, texts: str | Sequence[str], model: str | None = None, *, normalize: bool | None = None,
              truncate: bool = False, dimensions: int | None = None) -> Any:
        """Sentence embeddings (docs/embeddings.md): a list of floats for one text, a list of
        them for many. `normalize` defaults to the model's modules.json."""
        one = isinstance(texts, str)
        items = [texts] if one else list(texts)
        out: list[list[float]] = []
        for chunk in self._batched(items, model):
            body: dict[str, Any] = {"inputs": list(chunk), "truncate": truncate}
            if normalize is not None:
                body["normalize"] = normalize
            if dimensions is not None:
                body["dimensions"] = dimensions
            out += self._t.request("POST", self._prefix(model) + "/embed", body)
        return out[0] if one else out

    def rerank(self, query: str, texts: Sequence[str], model: str | None = None, *, raw_scores: bool = False,
               return_text: bool = False, truncate: bool = False) -> list[RerankResult]:
        """Scores each (query, text) pair with a cross-encoder; best first."""
        reply = self._t.request("POST", self._prefix(model) + "/rerank",
                                {"query": query, "texts": list(texts), "raw_scores": raw_scores,
                                 "return_text": return_text, "truncate": truncate})
        return [RerankResult(r["index"], r["score"], r.get("text")) for r in reply]

    # -- models ----------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every registered model version."""
        return list(self._t.request("GET", "/v1/models").get("models", []))

    def get_model(self, model: str) -> dict[str, Any]:
        """One version (NAME, NAME:VERSION or NAME@ALIAS)."""
        return dict(self._t.request("GET", "/v1/models/" + _quote(model)))

    def set_alias(self, name: str, alias: str, version: int | str) -> dict[str, Any]:
        """Points NAME@ALIAS at a version."""
        return dict(self._t.request("PUT", "/v1/models/%s/aliases/%s" % (_quote(name), _quote(alias)),
                                    {"version": str(version)}))

    def loaded_models(self) -> list[dict[str, Any]]:
        """The versions loaded for inference now, with their queue depth and counts."""
        return list(self._t.request("GET", "/v1/loaded-models").get("models", []))

    def delete_model(self, name: str, version: int | str | None = None) -> None:
        """Deletes one version, or every version of NAME."""
        path = "/v1/models/" + _quote(name) + ("" if version is None else "/versions/%s" % version)
        self._t.request("DELETE", path, idempotent=False)

    def import_model(self, name: str, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Registers a Hugging Face classifier directory (config.json, weights, tokenizer files)
        as the next version of NAME: the directory is sent as a tar archive, so it need not be
        on the server's machine."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            root = os.fspath(directory)
            for entry in sorted(os.listdir(root)):
                tar.add(os.path.join(root, entry), arcname=entry)
        return dict(self._t.request("POST", "/v1/models/%s/versions" % _quote(name), body=buf.getvalue(),
                                    content_type="application/x-tar", idempotent=False))

    def export_model(self, model: str, directory: str | os.PathLike[str]) -> list[str]:
        """Writes a version's files (NAME, NAME:VERSION or NAME@ALIAS) into `directory`, which
        then loads with transformers' from_pretrained; returns the file names."""
        data = self._t.request("GET", "/v1/models/%s/export" % _quote(model), raw=True)
        os.makedirs(directory, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
            tar.extractall(directory, filter="data")  # nothing outside `directory`
        return names

    # -- datasets --------------------------------------------------------------------------

    def upload_dataset(self, data: Any, *, file_name: str | None = None, text_column: str | None = None,
                       text_pair_column: str | None = None, label_column: str | None = None,
                       multi_label: bool = False) -> dict[str, Any]:
        """Uploads a dataset: a path (CSV, TSV, JSONL), a list of dicts, a pandas DataFrame or a
        Hugging Face `datasets.Dataset` (both sent as JSON Lines). The same bytes always get the
        same dataset_id, so a retried upload is harmless. The body is streamed in chunks of 1 MiB
        (chunked transfer encoding), never held whole; a file's SHA-256 goes with it and the
        server checks it. A broken file raises InvalidArgument whose `field` is FILE:LINE."""
        query: dict[str, str] = {}
        body: Callable[[], Iterator[bytes]]
        if isinstance(data, (str, os.PathLike)):
            path = os.fspath(data)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    digest.update(chunk)
            query["sha256"] = digest.hexdigest()  # the server checks the bytes it received

            def body() -> Iterator[bytes]:
                with open(path, "rb") as f:
                    while chunk := f.read(UPLOAD_CHUNK):
                        yield chunk
            file_name = file_name or os.path.basename(path)
        else:
            # Rows are read once per attempt: a DataFrame as records, a list or a Hugging Face
            # Dataset as it is, any other iterable into a list first (a retry reads it again).
            rows = data.to_dict("records") if hasattr(data, "to_dict") and not hasattr(data, "features") \
                else data if isinstance(data, Sequence) or hasattr(data, "features") else list(data)

            def body() -> Iterator[bytes]:
                buf = io.StringIO()
                for row in rows:
                    buf.write(json.dumps(row, ensure_ascii=False, default=_plain) + "\n")
                    if buf.tell() >= UPLOAD_CHUNK:
                        yield buf.getvalue().encode()
                        buf = io.StringIO()
                if buf.tell():
                    yield buf.getvalue().encode()
            file_name = file_name or "dataset.jsonl"
        query["file_name"] = file_name
        for k, v in [("text_column", text_column), ("text_pair_column", text_pair_column),
                     ("label_column", label_column)]:
            if v:
                query[k] = v
        if multi_label:
            query["multi_label"] = "true"
        return dict(self._t.request("POST", "/v1/datasets?" + urllib.parse.urlencode(query), body=body,
                                    content_type="application/octet-stream"))

    # -- jobs ------------------------------------------------------------------------------

    def create_job(self, base_model: str, train_dataset_id: str, model_name: str, *,
                   validation_dataset_id: str | None = None, validation_split: float | None = None,
                   text_column: str | None = None, text_pair_column: str | None = None,
                   label_column: str | None = None, task: Task | str | None = None, workers: int | None = None,
                   idempotency_key: str | None = None, **hyperparameters: Unpack[Hyperparameters]) -> dict[str, Any]:
        """Starts a fine-tuning job. `hyperparameters` are berth.v1.Hyperparameters' fields
        (epochs, learning_rate, batch_size, ...; see berth.Hyperparameters), unset ones keeping
        the server's defaults. `task`: a berth.Task (TASK_SINGLE_LABEL by default,
        TASK_MULTI_LABEL, TASK_SCORE_BCE, TASK_SCORE_MSE) or its name. The
        idempotency key (a fresh one unless given) makes a retried call return the same job."""
        req: dict[str, Any] = {"base_model": base_model, "train_dataset_id": train_dataset_id,
                               "model_name": model_name}
        for k, v in [("validation_dataset_id", validation_dataset_id), ("validation_split", validation_split),
                     ("text_column", text_column), ("text_pair_column", text_pair_column),
                     ("label_column", label_column), ("task", task), ("workers", workers)]:
            if v is not None:
                req[k] = v
        if hyperparameters:
            req["hyperparameters"] = dict(hyperparameters)
        key = idempotency_key or uuid.uuid4().hex
        return dict(self._t.request("POST", "/v1/jobs", req, headers={"Idempotency-Key": key}))

    def get_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._t.request("GET", "/v1/jobs/" + _quote(job_id)))

    def list_jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, every page (`state`: e.g. "running")."""
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            q = {k: v for k, v in [("state", state), ("page_token", token)] if v}
            reply = self._t.request("GET", "/v1/jobs" + ("?" + urllib.parse.urlencode(q) if q else ""))
            out += reply.get("jobs", [])
            token = reply.get("next_page_token", "")
            if not token:
                return out

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._t.request("POST", "/v1/jobs/%s/cancel" % _quote(job_id)))

    def job_log(self, job_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        """The job's history after event `after_id`, oldest first, every page: state changes,
        errors, and "progress" events whose `progress` holds each stored point (update, loss,
        learning_rate, grad_norm; `last_eval` on evaluation points) -- its curves."""
        out: list[dict[str, Any]] = []
        while True:
            page = self._t.request("GET", "/v1/jobs/%s/log?after_id=%d" % (_quote(job_id), after_id))
            events = list(page.get("events", []))
            out += events
            if len(events) < 1000:
                return out
            after_id = int(events[-1]["id"])

    def training_defaults(self) -> dict[str, Any]:
        """Every option a job gets when `create_job` leaves it unset (a StartTrainingRequest)."""
        return dict(self._t.request("GET", "/v1/training-defaults"))

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's events as (kind, status) until it ends: "state", "progress", "evaluation"."""
        yield from self._t.events("/v1/jobs/%s/events" % _quote(job_id))

    def wait(self, job_id: str, *, progress: bool = False) -> dict[str, Any]:
        """Follows the job to its end and returns its final status. `progress`: a tqdm bar of
        the updates with loss, learning rate, the server's ETA and the last evaluation (a line
        per event on stderr where tqdm is not installed). Ctrl-C cancels the job on the
        server, then raises KeyboardInterrupt."""
        show = _Progress(job_id) if progress else None
        try:
            status = self.get_job(job_id)
            while status.get("state") not in FINAL_STATES:
                try:
                    for kind, status in self.events(job_id):
                        if show is not None:
                            show.update(kind, status)
                        if status.get("state") in FINAL_STATES:
                            break
                except BerthError:
                    time.sleep(0.5)  # the stream broke (a restart): poll, then follow again
                status = self.get_job(job_id)
            return status
        except KeyboardInterrupt:
            self.cancel_job(job_id)
            raise
        finally:
            if show is not None:
                show.close()


def _plain(value: Any) -> Any:
    """numpy scalars and the like, as JSON takes them."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError("%r is not JSON" % (value,))


class _Progress:
    """wait()'s progress: a tqdm bar when tqdm is installed (the `progress` extra), else lines."""

    def __init__(self, job_id: str) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]
        except ImportError:
            self._bar: Any = None
        else:
            self._bar = tqdm(desc=job_id[:12], unit="update", file=sys.stderr)

    def update(self, kind: str, status: dict[str, Any]) -> None:
        if self._bar is None:
            _print_progress(kind, status)
            return
        p = status.get("progress", {})
        total, done = int(p.get("total_updates", 0)), int(p.get("update", 0))
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        post = {"loss": "%.4f" % p.get("loss", 0.0), "lr": "%.2e" % p.get("learning_rate", 0.0),
                "eta": "%.0fs" % p.get("eta_seconds", 0.0)}
        e = p.get("last_eval", {})
        scorer = bool(e.get("scored"))  # a TASK_SCORE_* job
        for k in ("pearson", "spearman") if scorer else ("accuracy", "macro_f1"):
            if k in e:
                post["eval_" + k] = "%.4f" % e[k]
        self._bar.set_postfix(post, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _print_progress(kind: str, status: dict[str, Any]) -> None:
    p = status.get("progress", {})
    if kind == "evaluation":
        e = p.get("last_eval", {})
        print("eval  update %s  %s" % (e.get("update", "?"), "  ".join(
            "%s %.4f" % (k, e[k]) for k in ("loss", "accuracy", "macro_f1", "pearson", "spearman") if k in e)),
            file=sys.stderr)
    elif kind == "progress":
        print("update %s/%s  loss %.4f  lr %.2e  eta %.0fs" % (
            p.get("update", 0), p.get("total_updates", 0), p.get("loss", 0.0), p.get("learning_rate", 0.0),
            p.get("eta_seconds", 0.0)), file=sys.stderr)
    else:
        print("state %s" % status.get("state"), file=sys.stderr)
