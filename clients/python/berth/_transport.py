"""HTTP/1.1 to one or several berth-server replicas: keep-alive connections (one per replica
and thread), TLS and mutual TLS, a bearer token, deadlines, and retries with exponential
backoff and jitter for idempotent calls on UNAVAILABLE and RESOURCE_EXHAUSTED."""
from __future__ import annotations

import http.client
import itertools
import json
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import BerthError, DeadlineExceeded, ResourceExhausted, Unavailable, error_for

RETRYABLE = (Unavailable, ResourceExhausted)
# A request body: bytes, or a function that returns its chunks, sent with chunked transfer
# encoding (called again for each attempt, so a retried upload sends every chunk again).
Body = bytes | Callable[[], Iterator[bytes]] | None
DOWN_SECONDS = 1.0  # how long a replica that failed a connection is left out


class Transport:
    def __init__(self, urls: list[str], token: str | None, tls_ca: str | None, tls_cert: str | None,
                 tls_key: str | None, timeout: float, retries: int, backoff: float = 0.1) -> None:
        self._replicas = [urllib.parse.urlsplit(u if "://" in u else "http://" + u) for u in urls]
        for r in self._replicas:
            if r.scheme not in ("http", "https") or not r.hostname:
                raise ValueError("server: %r is not http://HOST:PORT or https://HOST:PORT" % r.geturl())
        self._ssl: ssl.SSLContext | None = None
        if tls_ca or any(r.scheme == "https" for r in self._replicas):
            self._ssl = ssl.create_default_context(cafile=tls_ca)
            if tls_cert:
                self._ssl.load_cert_chain(tls_cert, tls_key)
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self._backoff = backoff
        self._next = itertools.count()
        self._local = threading.local()
        # A replica that refused or dropped a connection is skipped until this time
        # (time.monotonic), as gRPC's round_robin leaves out a failed subchannel.
        self._down: dict[int, float] = {}

    def _pick(self) -> int:
        """The next replica round-robin, skipping those marked down while any other is up."""
        now = time.monotonic()
        first = next(self._next) % len(self._replicas)
        for k in range(len(self._replicas)):
            i = (first + k) % len(self._replicas)
            if self._down.get(i, 0.0) <= now:
                return i
        return first

    def any_up(self) -> bool:
        now = time.monotonic()
        return any(self._down.get(i, 0.0) <= now for i in range(len(self._replicas)))

    def _connection(self, i: int) -> http.client.HTTPConnection:
        conns: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault("conns", {})
        c = conns.get(i)
        if c is None:
            r = self._replicas[i]
            port = r.port or (443 if self._ssl else 80)
            c = (http.client.HTTPSConnection(r.hostname or "", port, timeout=self.timeout, context=self._ssl)
                 if self._ssl else http.client.HTTPConnection(r.hostname or "", port, timeout=self.timeout))
            conns[i] = c
        return c

    def _drop(self, i: int) -> None:
        conns = self._local.__dict__.get("conns", {})
        c = conns.pop(i, None)
        if c is not None:
            c.close()

    def _headers(self, content_type: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        h = {"Accept": "application/json"}
        if content_type:
            h["Content-Type"] = content_type
        if self._token:
            h["Authorization"] = "Bearer " + self._token
        h.update(extra or {})
        return h

    def _once(self, method: str, path: str, body: Body, headers: dict[str, str],
              stream: bool) -> tuple[int, http.client.HTTPResponse | bytes, int]:
        i = self._pick()
        c = self._connection(i)
        try:
            if callable(body):  # streamed: each attempt reads its chunks afresh
                c.request(method, path, body=body(), headers=headers, encode_chunked=True)
            else:
                c.request(method, path, body=body, headers=headers)
            resp = c.getresponse()
            if stream and resp.status < 300:
                self._local.__dict__.get("conns", {}).pop(i, None)  # the stream owns it now
                return resp.status, resp, i
            data = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self._drop(i)
            if resp.status >= 300:
                raise self._error(resp, data)
            return resp.status, data, i
        except TimeoutError as e:
            self._drop(i)
            raise DeadlineExceeded("no answer within %.1f s: %s" % (self.timeout, e)) from e
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            self._drop(i)
            self._down[i] = time.monotonic() + DOWN_SECONDS
            raise Unavailable("%s: %s" % (self._replicas[i].netloc, e)) from e
        except BaseException:
            # Ctrl-C or an error mid-call: closing the connection tells the server the client is
            # gone, and it drops the call's texts before their forward pass.
            self._drop(i)
            raise

    @staticmethod
    def _error(resp: http.client.HTTPResponse, data: bytes) -> BerthError:
        try:
            j = json.loads(data)
            err = j.get("error")
            if isinstance(err, dict):  # the OpenAI form of /v1/embeddings
                message, error_type = err.get("message", ""), err.get("type", "")
            else:
                message, error_type = err or "", j.get("error_type", "")
        except (ValueError, AttributeError):
            message, error_type = data.decode(errors="replace"), ""
        retry = resp.getheader("Retry-After")
        return error_for(resp.status, str(message) or resp.reason, str(error_type),
                         float(retry) if retry and retry.replace(".", "", 1).isdigit() else None)

    def request(self, method: str, path: str, payload: Any = None, *, body: Body = None,
                content_type: str | None = None, headers: dict[str, str] | None = None,
                idempotent: bool = True, raw: bool = False) -> Any:
        """The JSON answer of a call (`raw`: its bytes); retried on UNAVAILABLE and
        RESOURCE_EXHAUSTED when idempotent."""
        if payload is not None:
            body, content_type = json.dumps(payload).encode(), "application/json"
        h = self._headers(content_type, headers)
        attempt = 0
        while True:
            try:
                _, data, _ = self._once(method, path, body, h, stream=False)
                assert isinstance(data, bytes)
                if raw:
                    return data
                return json.loads(data) if data else None
            except RETRYABLE as e:
                attempt += 1
                if not idempotent or attempt > self.retries:
                    raise
                if e.status == 0 and self.any_up():
                    continue  # that replica is gone: another one takes the call at once
                # Exponential backoff with full jitter, never sooner than the server's hint.
                delay = random.uniform(0, self._backoff * 2 ** attempt)
                time.sleep(max(delay, e.retry_after or 0))

    def events(self, path: str) -> Iterator[tuple[str, Any]]:
        """Server-Sent Events of `path` as (event, data) until the stream ends."""
        _, resp, _ = self._once("GET", path, None, self._headers(None, {"Accept": "text/event-stream"}), stream=True)
        assert isinstance(resp, http.client.HTTPResponse)
        try:
            event, data = "message", list[str]()
            while True:
                line = resp.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if not text:
                    if data:
                        yield event, json.loads("\n".join(data))
                    event, data = "message", list[str]()
                elif text.startswith("event:"):
                    event = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].lstrip())
        finally:
            resp.close()
