"""Call models on Beta9: ``from beta9 import inference``.

    inference.configure(host="gateway.example", api_key="b9_…")   # or BETA9_INFERENCE_HOST, …
    print(inference.chat("smollm2", [{"role": "user", "content": "Hello!"}]).content)

The functions here use one default client built from ``configure()`` and the environment. For
several servers, or async code, make your own ``Client`` / ``AsyncClient`` (they start from the
same settings).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Literal, Optional, Union, overload

from . import _base_client
from ._async_client import AsyncClient
from ._client import Client
from ._settings import Settings, resolve
from ._streaming import AsyncStream, Stream
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
from .types import (
    ChatChunk,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    Health,
    Model,
    ModelStatus,
    Usage,
)

__all__ = [
    "configure",
    "settings",
    "chat",
    "generate",
    "embed",
    "list_models",
    "load_model",
    "unload_model",
    "health",
    "Client",
    "AsyncClient",
    "Settings",
    "Stream",
    "AsyncStream",
    "ChatResult",
    "ChatChunk",
    "GenerateResult",
    "GenerateChunk",
    "EmbedResult",
    "Model",
    "Health",
    "ModelStatus",
    "Usage",
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

_lock = threading.Lock()
_default: Optional[Client] = None


def configure(
    host: Optional[str] = None,
    port: Optional[int] = None,
    api_key: Optional[str] = None,
    scheme: Optional[str] = None,
    timeout: Optional[float] = None,
    target: Optional[str] = None,
    ca_file: Optional[str] = None,
) -> None:
    """Where the module's functions (and new clients) send requests; what is not given comes from the
    environment (BETA9_INFERENCE_HOST, BETA9_INFERENCE_PORT, BETA9_API_KEY, BETA9_CA_FILE) or the
    defaults (localhost:1994, http, 120 s). Each call replaces the previous configuration.

    host may carry a port and scheme ("https://gateway.example:443"); ca_file is a PEM file of the
    CA that signed the server's certificate, when the system does not trust it. target is "gateway" or "agent"
    (the default follows the key: "agent" for an agent's b9m_ machine token).
    """
    given: Dict[str, Any] = {
        "host": host,
        "port": port,
        "api_key": api_key,
        "scheme": scheme,
        "timeout": timeout,
        "target": target,
        "ca_file": ca_file,
    }
    resolve(given, {})  # refuse bad settings now, not at the first call
    global _default
    with _lock:
        _base_client.configured.clear()
        _base_client.configured.update({k: v for k, v in given.items() if v is not None})
        old, _default = _default, None
    if old is not None:
        old.close()


def settings() -> Settings:
    """The settings the module's functions use now."""
    return _client().settings


def _client() -> Client:
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


@overload
def chat(model: str, messages: List[Dict[str, Any]], *, stream: Literal[False] = ..., **options: Any) -> ChatResult: ...
@overload
def chat(model: str, messages: List[Dict[str, Any]], *, stream: Literal[True], **options: Any) -> Stream[ChatChunk]: ...
def chat(
    model: str, messages: List[Dict[str, Any]], *, stream: bool = False, **options: Any
) -> Union[ChatResult, Stream[ChatChunk]]:
    """A chat completion: ``.content``, ``.model``, ``.finish_reason``, ``.usage``; with
    ``stream=True`` an iterator of chunks (``.content`` is the new text; the last has ``.usage``)."""
    return _client().chat(model, messages, stream=stream, **options)  # type: ignore[call-overload, no-any-return]


@overload
def generate(model: str, prompt: str, *, stream: Literal[False] = ..., **options: Any) -> GenerateResult: ...
@overload
def generate(model: str, prompt: str, *, stream: Literal[True], **options: Any) -> Stream[GenerateChunk]: ...
def generate(
    model: str, prompt: str, *, stream: bool = False, **options: Any
) -> Union[GenerateResult, Stream[GenerateChunk]]:
    """A text completion of ``prompt``."""
    return _client().generate(model, prompt, stream=stream, **options)  # type: ignore[call-overload, no-any-return]


def embed(model: str, input: Union[str, List[str]], **options: Any) -> EmbedResult:
    """Embeddings: ``.embedding`` for one text, ``.embeddings`` for a list."""
    return _client().embed(model, input, **options)


def list_models() -> List[Model]:
    """The models that can answer now."""
    return _client().list_models()


def load_model(
    model: str,
    source: Optional[str] = None,
    *,
    sha256: Optional[str] = None,
    engine: Optional[str] = None,
    context_size: Optional[int] = None,
    timeout: Optional[float] = None,
    **deployment: Any,
) -> ModelStatus:
    """Make ``model`` servable and wait until it answers; see ``Client.load_model``."""
    return _client().load_model(
        model, source, sha256=sha256, engine=engine, context_size=context_size, timeout=timeout, **deployment
    )


def unload_model(model: str, *, wait: bool = False, timeout: Optional[float] = None) -> None:
    """Stop serving ``model``; see ``Client.unload_model``."""
    _client().unload_model(model, wait=wait, timeout=timeout)


def health() -> Health:
    """The server's liveness."""
    return _client().health()
