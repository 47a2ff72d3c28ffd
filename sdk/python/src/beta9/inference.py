"""Call models on Beta9: ``from beta9 import inference``.

    inference.configure(host="gateway.example", api_key="b9_…")   # or BETA9_INFERENCE_HOST, …
    print(inference.chat("smollm2", [{"role": "user", "content": "Hello!"}]).content)

The functions here use one default client built from ``configure()`` and the environment. For
several servers, or async code, make your own ``Client`` / ``AsyncClient`` (they start from the
same settings). The fork's calls work as they were written: ``configure(host, port, timeout)``,
``options=`` (a dict or InferenceOptions), ChatMessage, ``load_model(model, keep_alive)``, and
results with ``.ok``, ``.error`` and ``usage["prompt_tokens"]``; pointed at an Ollama server, the
client speaks Ollama's API.
"""

from __future__ import annotations

import threading
from typing import Any, List, Literal, Optional, Union, overload

from . import _settings
from ._async_client import AsyncClient
from ._client import Client, Messages, Options
from ._sampling import DEFAULT_MAX_TOKENS
from ._settings import GATEWAY_PORT, Settings
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
    ChatMessage,
    ChatResult,
    EmbeddingResult,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    Health,
    InferenceOptions,
    InferenceResult,
    Model,
    ModelInfo,
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
    "get_client",
    "Client",
    "InferenceClient",
    "ChatMessage",
    "InferenceOptions",
    "InferenceResult",
    "EmbeddingResult",
    "ModelInfo",
    "DEFAULT_INFERENCE_HOST",
    "DEFAULT_INFERENCE_PORT",
    "DEFAULT_MAX_TOKENS",
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

# Where requests go when neither configure() nor the environment says (the fork's names).
DEFAULT_INFERENCE_HOST = "localhost"
DEFAULT_INFERENCE_PORT = GATEWAY_PORT

_lock = threading.Lock()
_default: Optional[Client] = None


class InferenceClient(Client):
    """The fork's client, ``InferenceClient(host, port, timeout)``: a Client with the fork's order of
    arguments (the rest by keyword)."""

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        timeout: Optional[float] = None,
        *,
        api_key: Optional[str] = None,
        **settings: Any,
    ) -> None:
        super().__init__(host=host, port=port, timeout=timeout, api_key=api_key, **settings)


def configure(
    host: Optional[str] = None,
    port: Optional[int] = None,
    timeout: Optional[float] = None,
    *,
    api_key: Optional[str] = None,
    scheme: Optional[str] = None,
    target: Optional[str] = None,
    ca_file: Optional[str] = None,
    protocol: Optional[str] = None,
) -> None:
    """Where the module's functions (and new clients) send requests, in the fork's order:
    ``configure(host, port, timeout)``; the rest by keyword. What is not given comes from the
    environment (BETA9_INFERENCE_HOST, BETA9_INFERENCE_PORT, BETA9_API_KEY, BETA9_CA_FILE) or the
    defaults (localhost:1994, http, 600 s). Each call replaces the previous configuration.

    host may carry a port and scheme ("https://gateway.example:443"); ca_file is a PEM file of the
    CA that signed the server's certificate, when the system does not trust it. target is "gateway" or "agent"
    (the default follows the key: "agent" for an agent's b9m_ machine token). protocol is "openai" or
    "ollama"; by default a Beta9 key means "openai" and otherwise the server is asked once, so
    ``configure(host="gpu-box", port=11434)`` reaches a plain Ollama.
    """
    given = _settings.given(
        host=host,
        port=port,
        timeout=timeout,
        api_key=api_key,
        scheme=scheme,
        target=target,
        ca_file=ca_file,
        protocol=protocol,
    )
    global _default
    with _lock:
        _settings.configure(given)
        old, _default = _default, None
    if old is not None:
        old.close()


def settings() -> Settings:
    """The settings the module's functions use now."""
    return _client().settings


def get_client() -> Client:
    """The client the module's functions use (the fork's name)."""
    return _client()


def _client() -> Client:
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


@overload
def chat(
    model: str, messages: Messages, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
) -> ChatResult: ...
@overload
def chat(
    model: str, messages: Messages, options: Options = ..., *, stream: Literal[True], **kwargs: Any
) -> Stream[ChatChunk]: ...
def chat(
    model: str, messages: Messages, options: Options = None, *, stream: bool = False, **kwargs: Any
) -> Union[ChatResult, Stream[ChatChunk]]:
    """A chat completion: ``.content``, ``.model``, ``.finish_reason``, ``.usage``; with
    ``stream=True`` an iterator of chunks (``.content`` is the new text; the last has ``.usage``).
    Messages are dicts or ChatMessage; options a dict (``{"temperature": 0.2, "num_predict": 64}``),
    an InferenceOptions, or keywords (``max_tokens=64``). Without max_tokens the answer stops at
    DEFAULT_MAX_TOKENS (512) tokens; ``max_tokens=None`` lifts the cap."""
    return _client().chat(model, messages, options, stream=stream, **kwargs)  # type: ignore[call-overload, no-any-return]


@overload
def generate(
    model: str, prompt: str, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
) -> GenerateResult: ...
@overload
def generate(
    model: str, prompt: str, options: Options = ..., *, stream: Literal[True], **kwargs: Any
) -> Stream[GenerateChunk]: ...
def generate(
    model: str, prompt: str, options: Options = None, *, stream: bool = False, **kwargs: Any
) -> Union[GenerateResult, Stream[GenerateChunk]]:
    """A text completion of ``prompt``; options and the 512-token default cap as for chat."""
    return _client().generate(model, prompt, options, stream=stream, **kwargs)  # type: ignore[call-overload, no-any-return]


def embed(model: str, input: Union[str, List[str]], **options: Any) -> EmbedResult:
    """Embeddings: ``.embedding`` for one text, ``.embeddings`` for a list."""
    return _client().embed(model, input, **options)


def list_models() -> List[Model]:
    """The models the server lists: ``m.name``, and ``m.load_state`` ("ready" or "idle")."""
    return _client().list_models()


def load_model(
    model: str,
    source: Optional[str] = None,
    *,
    keep_alive: Optional[Union[int, str]] = None,
    sha256: Optional[str] = None,
    engine: Optional[str] = None,
    context_size: Optional[int] = None,
    timeout: Optional[float] = None,
    **deployment: Any,
) -> ModelStatus:
    """Make ``model`` servable and wait until it answers; ``keep_alive`` as in the fork (also its
    second positional argument); see ``Client.load_model``."""
    return _client().load_model(
        model,
        source,
        keep_alive=keep_alive,
        sha256=sha256,
        engine=engine,
        context_size=context_size,
        timeout=timeout,
        **deployment,
    )


def unload_model(model: str, *, wait: bool = False, timeout: Optional[float] = None) -> bool:
    """Stop serving ``model``; see ``Client.unload_model``."""
    return _client().unload_model(model, wait=wait, timeout=timeout)


def health() -> Health:
    """The server's liveness; true when it is up."""
    return _client().health()
