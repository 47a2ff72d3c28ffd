"""Exceptions raised by the SDK.

Every exception is a ``Beta9Error`` with a stable ``code`` (the server's, when the server answered)
and a ``message`` that says what to do. Server answers map to one class per status family, so a caller
can catch ``NotFoundError`` or switch on ``err.code``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional


class Beta9Error(Exception):
    """Base of every SDK error: ``code`` is stable and machine-readable, ``message`` is for people."""

    def __init__(self, message: str, *, code: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        # A server's answer shows its status and code; the SDK's own errors are just their sentence.
        return f"{self.message} ({self.status} {self.code})" if self.status is not None else self.message


class ValidationError(Beta9Error, ValueError):
    """An argument was wrong; nothing was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_argument")


class APIConnectionError(Beta9Error):
    """The server could not be reached, or the connection broke before the answer was complete."""

    def __init__(self, message: str, *, code: str = "connection_failed") -> None:
        super().__init__(message, code=code)


class APITimeoutError(APIConnectionError):
    """The server did not answer within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


class APIError(Beta9Error):
    """The server answered with an error: its status, its error code and its message."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: Optional[int],
        type: Optional[str] = None,
        body: Any = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.type = type
        self.body = body
        self.retry_after = retry_after


class BadRequestError(APIError):
    """400, 413, 415, 422: the request was wrong."""


class AuthenticationError(APIError):
    """401: no key, a wrong key, or a revoked one."""


class PermissionDeniedError(APIError):
    """403: the key lacks the scope the call needs."""


class NotFoundError(APIError):
    """404: no such model, deployment or route."""


class ConflictError(APIError):
    """409: the thing exists already, or is busy."""


class RateLimitError(APIError):
    """429: over the key's limits; ``retry_after`` says when to try again."""


class ServerError(APIError):
    """5xx: the server or a machine behind it failed; 503 carries ``retry_after``."""


class StreamError(APIError):
    """A stream ended with an error event, e.g. the machine serving it went away."""


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    429: "rate_limited",
    503: "unavailable",
}


def error_from_response(status: int, body: Any, headers: Optional[Mapping[str, str]] = None) -> APIError:
    """The exception for an error answer, from either JSON shape the servers use.

    Beta9's own ``{"error": {"code", "message"}}``, OpenAI's ``{"error": {"message", "type", "code"}}``
    and Ollama's ``{"error": "message"}`` all carry what the caller needs.
    """
    code: Optional[str] = None
    message: Optional[str] = None
    kind: Optional[str] = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        code = _str(err.get("code"))
        message = _str(err.get("message"))
        kind = _str(err.get("type"))
    elif isinstance(err, str):
        message = err
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:500]
    code = code or kind or _CODE_BY_STATUS.get(status) or ("internal" if status >= 500 else "error")
    message = message or f"the server answered {status} without saying why"
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(
        message,
        code=code,
        status=status,
        type=kind,
        body=body,
        retry_after=_retry_after(headers),
    )


def _str(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _retry_after(headers: Optional[Mapping[str, str]]) -> Optional[float]:
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
