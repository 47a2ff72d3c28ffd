"""Client: the synchronous SDK, for a gateway, one agent, or an Ollama-compatible server."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, TypeVar, Union, cast, overload

import httpx

from . import _api
from ._base_client import BaseClient
from ._plan import Pause, Plan, Request
from ._streaming import Stream
from .errors import Beta9Error
from .jobs import Jobs
from .types import (
    ChatChunk,
    ChatMessage,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    Health,
    InferenceOptions,
    Model,
    ModelStatus,
)

T = TypeVar("T")
Messages = Sequence[Union[ChatMessage, Mapping[str, Any]]]
Options = Union[InferenceOptions, Dict[str, Any], None]


class Client(BaseClient):
    """Calls models on a Beta9 gateway (an API key), directly on one agent (its machine token), or on
    any Ollama-compatible server.

    Settings not given come from ``inference.configure()``, then the environment
    (``BETA9_INFERENCE_HOST``, ``BETA9_INFERENCE_PORT``, ``BETA9_API_KEY``), then the defaults
    (localhost, 1994). ``target`` is "gateway" or "agent"; by default it is "agent" for a ``b9m_``
    machine token and "gateway" otherwise. ``protocol`` is "openai" or "ollama"; by default a Beta9 key
    means "openai", and without one the client asks the server once which it speaks. Use it as a
    context manager, or call ``close()``.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        api_key: Optional[str] = None,
        scheme: Optional[str] = None,
        timeout: Optional[float] = None,
        target: Optional[str] = None,
        *,
        headers: Optional[Dict[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
        ca_file: Optional[str] = None,
        protocol: Optional[str] = None,
    ) -> None:
        super().__init__(
            headers,
            host=host,
            port=port,
            api_key=api_key,
            scheme=scheme,
            timeout=timeout,
            target=target,
            ca_file=ca_file,
            protocol=protocol,
        )
        self._http = httpx.Client(
            base_url=self.settings.base_url, headers=self._headers, transport=transport, verify=self._verify()
        )
        #: Commands run as jobs on the gateway's machines (a key with the jobs scope).
        self.jobs = Jobs(self)

    # --- inference ---

    @overload
    def chat(
        self, model: str, messages: Messages, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
    ) -> ChatResult: ...
    @overload
    def chat(
        self, model: str, messages: Messages, options: Options = ..., *, stream: Literal[True], **kwargs: Any
    ) -> Stream[ChatChunk]: ...
    def chat(
        self, model: str, messages: Messages, options: Options = None, *, stream: bool = False, **kwargs: Any
    ) -> Union[ChatResult, Stream[ChatChunk]]:
        """A chat completion. Options (``options={"temperature": 0.2, "num_predict": 64}``, an
        InferenceOptions, or keywords such as ``max_tokens=64``) go to the server in its API's spelling;
        one it has no field for is refused. Without max_tokens the answer is capped at 512 tokens
        (``max_tokens=None``: no cap). With ``stream=True``, an iterator of ChatChunk whose ``content``
        is the new text."""
        return self._generation(_api.chat(model, messages, options, stream, kwargs))  # type: ignore[no-any-return]

    @overload
    def generate(
        self, model: str, prompt: str, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
    ) -> GenerateResult: ...
    @overload
    def generate(
        self, model: str, prompt: str, options: Options = ..., *, stream: Literal[True], **kwargs: Any
    ) -> Stream[GenerateChunk]: ...
    def generate(
        self, model: str, prompt: str, options: Options = None, *, stream: bool = False, **kwargs: Any
    ) -> Union[GenerateResult, Stream[GenerateChunk]]:
        """A text completion of ``prompt``; options, the 512-token default cap and ``stream=True`` as for chat."""
        return self._generation(_api.generate(model, prompt, options, stream, kwargs))  # type: ignore[no-any-return]

    def embed(self, model: str, input: Union[str, List[str]], **options: Any) -> EmbedResult:
        """Embeddings of one text (``.embedding``) or of a list (``.embeddings``, in order)."""
        call = _api.embed(model, input, options)
        protocol = self._speaks().protocol
        return call.parse(protocol, self._send(call.request(protocol)))

    def list_models(self) -> List[Model]:
        """The models the server lists; ``load_state`` says which answer now ("ready") and which would
        be loaded first ("idle")."""
        found = self._speaks()
        return self._run(_api.list_models(found.protocol, self._target()))

    def health(self) -> Health:
        """The server's liveness (needs no key); true when it is up."""
        return self._run(_api.health(self._speaks().protocol))

    # --- model lifecycle ---

    def load_model(
        self,
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
        """Make ``model`` servable and wait until it answers (at most ``timeout`` seconds, 600 by default).

        On an agent: pull it from ``source`` when given, then start it (``engine``, ``context_size``).
        On the gateway: with ``source``, create a deployment (admin key; ``min_replicas``,
        ``max_replicas``, ``idle_seconds``, ``pool``, ``gpu``, ``min_vram_bytes``, ``countries``,
        ``region`` as for ``b9 model deploy``); then have the gateway place it on a machine now.
        On an Ollama server: load it by name.

        ``keep_alive`` (seconds, as in the fork; also its second positional argument): 0 unloads it;
        -1 keeps it until unloaded (on the gateway, a new deployment with min_replicas=1), N unloads it
        after N idle seconds (Ollama, or a new gateway deployment's idle_seconds). The result is true
        when the model is ready (or unloaded, for keep_alive=0).
        """
        found = self._speaks()
        return self._run(
            _api.load_model(
                self._target(),
                found.protocol,
                model,
                source,
                keep_alive,
                sha256,
                engine,
                context_size,
                timeout,
                deployment,
            )
        )

    def unload_model(self, model: str, *, wait: bool = False, timeout: Optional[float] = None) -> bool:
        """On an agent: stop serving ``model``. On the gateway: remove its deployment (admin key); its
        replicas go within seconds, or before this returns with ``wait=True``. On an Ollama server:
        unload it from memory. True once done (a failure raises)."""
        protocol = self._speaks().protocol
        self._run(_api.unload_model(self._target(), protocol, model, wait, timeout))
        return True

    # --- plumbing ---

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _speaks(self) -> _api.Detected:
        """The API the server speaks: known from the settings, or asked once."""
        known = self._known()
        if known is None:
            known = self._detected = self._run(_api.detect())
        return known

    def _generation(self, call: _api.GenerationCall) -> Any:
        protocol = self._speaks().protocol
        request = call.request(protocol, self._where())
        if call.stream:
            return self._stream(request, call.parser(protocol), ndjson=protocol == "ollama")
        return call.parser(protocol)(self._send(request))

    def _send(self, request: Request) -> Any:
        try:
            response = self._http.send(self._build(self._http, request))
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        return self._read(response, request)

    def _stream(self, request: Request, parse: Any, ndjson: bool) -> Stream[Any]:
        try:
            response = self._http.send(self._build(self._http, request, stream=True, ndjson=ndjson), stream=True)
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise self._error(response)
        return Stream(response, parse, self._connection_error, ndjson)

    def _run(self, plan: Plan[T]) -> T:
        """Drive a plan: send each request, sleep each pause, hand back answers and errors."""
        try:
            step = next(plan)
            while True:
                try:
                    if isinstance(step, Pause):
                        time.sleep(step.seconds)
                        answer = None
                    else:
                        answer = self._send(step)
                except Beta9Error as err:
                    step = plan.throw(err)
                    continue
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)
