"""Berth's Python client: `from berth import Berth`.

    client = Berth("http://127.0.0.1:8080")
    client.classify("a gorgeous, witty movie", model="sst2-demo").label
"""
from ._async import AsyncBerth
from ._client import Berth
from ._errors import (BerthError, Cancelled, DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument,
                      NotFound, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable)
from ._generated import Hyperparameters, JobState, Precision, Task, Truncation
from ._types import Classification, RerankResult, Token

__all__ = ["AsyncBerth", "Berth", "BerthError", "Cancelled", "Classification", "DeadlineExceeded", "FailedPrecondition",
           "Hyperparameters", "Internal", "InvalidArgument", "JobState", "NotFound", "PermissionDenied", "Precision", "RerankResult", "ResourceExhausted",
           "Task", "Token", "Truncation", "Unauthenticated", "Unavailable"]
__version__ = "0.1.0"
