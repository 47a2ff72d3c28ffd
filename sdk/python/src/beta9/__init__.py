"""Beta9's Python SDK: call models on a Beta9 gateway or agent, and run functions on its machines.

from beta9 import inference
inference.configure(host="localhost", port=1994, api_key="b9_…")
print(inference.chat("smollm2", [{"role": "user", "content": "Hello!"}]).content)

from beta9 import function, Image
@function(gpu="any", image=Image(packages=["numpy"]))
def total(xs): import numpy; return float(numpy.sum(xs))
print(total.remote([1, 2, 3]))
"""

from . import inference
from ._async_client import AsyncClient
from ._client import Client
from ._version import __version__
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Beta9Error,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamError,
    ValidationError,
)
from ._function import AsyncFunctionCall, Function, FunctionCall, Image, RemoteError, function
from .jobs import Job, JobError, JobEvent, JobInput, JobList, JobLogLine, JobOutput
from .types import ChatMessage, InferenceOptions

__all__ = [
    "inference",
    "function",
    "Image",
    "Function",
    "FunctionCall",
    "AsyncFunctionCall",
    "RemoteError",
    "Job",
    "JobError",
    "JobEvent",
    "JobInput",
    "JobList",
    "JobLogLine",
    "JobOutput",
    "Client",
    "AsyncClient",
    "ChatMessage",
    "InferenceOptions",
    "__version__",
    "Beta9Error",
    "ValidationError",
    "APIError",
    "APIConnectionError",
    "APITimeoutError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RateLimitError",
    "ServerError",
    "StreamError",
]
