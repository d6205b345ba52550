"""Typed errors: one class per kind of failure, by the HTTP status the server answers with.

The server maps its errors to statuses in one place (server/status.cc, docs/http.md); this is
the inverse of that table, so a caller catches `berth.NotFound` whatever route failed.
"""
from __future__ import annotations

import re


class BerthError(Exception):
    """Any error the server answered with, or a connection that failed.

    `status` is the HTTP status (0 when no answer came), `error_type` the server's type (TEI's
    `error_type`), `field` the request field or `FILE:LINE` the message starts with, if any.
    """

    def __init__(self, message: str, status: int = 0, error_type: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.retry_after = retry_after
        m = re.match(r"([^\s:]+:\d+|[A-Za-z_][\w.\[\]/]*):", message)
        self.field: str | None = m.group(1) if m else None


class InvalidArgument(BerthError):
    """A request that breaks a rule (400, 405, 413, 422): `field` names the field or line."""


class Unauthenticated(BerthError):
    """No token, or one the server does not know (401)."""


class PermissionDenied(BerthError):
    """The token's role or model prefix does not allow the call (403)."""


class NotFound(BerthError):
    """An unknown model, version, alias, job or dataset (404)."""


class FailedPrecondition(BerthError):
    """A state that refuses the call (409), e.g. a model a queued job trains from."""


class ResourceExhausted(BerthError):
    """The server's queue is full (429); `retry_after` is its hint in seconds."""


class Cancelled(BerthError):
    """The call was cancelled (499)."""


class Internal(BerthError):
    """The model failed while answering (424), or the server failed (500)."""


class Unavailable(BerthError):
    """The server is draining, not ready or unreachable (503, or no connection)."""


class DeadlineExceeded(BerthError):
    """The call ran past its deadline (504, or the client's timeout)."""


_BY_STATUS: dict[int, type[BerthError]] = {
    400: InvalidArgument, 405: InvalidArgument, 413: InvalidArgument, 422: InvalidArgument,
    431: InvalidArgument, 401: Unauthenticated, 403: PermissionDenied, 404: NotFound,
    409: FailedPrecondition, 429: ResourceExhausted, 499: Cancelled, 424: Internal,
    500: Internal, 503: Unavailable, 504: DeadlineExceeded,
}


def error_for(status: int, message: str, error_type: str = "", retry_after: float | None = None) -> BerthError:
    """The typed error for an HTTP status (BerthError for one the table lacks)."""
    return _BY_STATUS.get(status, BerthError)(message, status, error_type, retry_after)
