"""AsyncClient: the same calls as Client, awaitable; streams are async iterators."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Literal, Optional, TypeVar, Union, cast, overload

import httpx

from . import _api
from ._base_client import BaseClient
from ._streaming import AsyncStream
from .errors import Beta9Error
from .types import ChatChunk, ChatResult, EmbedResult, GenerateChunk, GenerateResult, Health, Model, ModelStatus

T = TypeVar("T")


class AsyncClient(BaseClient):
    """The async twin of Client: the same settings and methods, each awaited
    (``await client.chat(...)``; ``async for chunk in await client.chat(..., stream=True)``).
    Use it with ``async with``, or call ``await client.aclose()``.
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
        transport: Optional[httpx.AsyncBaseTransport] = None,
        ca_file: Optional[str] = None,
    ) -> None:
        super().__init__(host, port, api_key, scheme, timeout, target, headers, ca_file)
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, headers=self._headers, transport=transport, verify=self._verify()
        )

    # --- inference ---

    @overload
    async def chat(
        self, model: str, messages: List[Dict[str, Any]], *, stream: Literal[False] = ..., **options: Any
    ) -> ChatResult: ...
    @overload
    async def chat(
        self, model: str, messages: List[Dict[str, Any]], *, stream: Literal[True], **options: Any
    ) -> AsyncStream[ChatChunk]: ...
    async def chat(
        self, model: str, messages: List[Dict[str, Any]], *, stream: bool = False, **options: Any
    ) -> Union[ChatResult, AsyncStream[ChatChunk]]:
        """A chat completion. ``options`` go to the server as they are (max_tokens, temperature, stop, …).
        With ``stream=True``, an iterator of ChatChunk whose ``content`` is the new text."""
        request = _api.chat(model, messages, stream, options)
        if stream:
            return await self._stream(request, _api.parse_chat_chunk)
        return _api.parse_chat(await self._send(request))

    @overload
    async def generate(
        self, model: str, prompt: str, *, stream: Literal[False] = ..., **options: Any
    ) -> GenerateResult: ...
    @overload
    async def generate(
        self, model: str, prompt: str, *, stream: Literal[True], **options: Any
    ) -> AsyncStream[GenerateChunk]: ...
    async def generate(
        self, model: str, prompt: str, *, stream: bool = False, **options: Any
    ) -> Union[GenerateResult, AsyncStream[GenerateChunk]]:
        """A text completion of ``prompt``; ``stream=True`` as for chat."""
        request = _api.generate(model, prompt, stream, options)
        if stream:
            return await self._stream(request, _api.parse_generate_chunk)
        return _api.parse_generate(await self._send(request))

    async def embed(self, model: str, input: Union[str, List[str]], **options: Any) -> EmbedResult:
        """Embeddings of one text (``.embedding``) or of a list (``.embeddings``, in order)."""
        return _api.parse_embed(await self._send(_api.embed(model, input, options)))

    async def list_models(self) -> List[Model]:
        """The models that can answer now."""
        return await self._run(_api.list_models())

    async def health(self) -> Health:
        """The server's liveness (needs no key)."""
        return await self._run(_api.health())

    # --- model lifecycle ---

    async def load_model(
        self,
        model: str,
        source: Optional[str] = None,
        *,
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
        """
        return await self._run(
            _api.load_model(self.settings.target, model, source, sha256, engine, context_size, timeout, deployment)
        )

    async def unload_model(self, model: str, *, wait: bool = False, timeout: Optional[float] = None) -> None:
        """On an agent: stop serving ``model``. On the gateway: remove its deployment (admin key); its
        replicas go within seconds, or before this returns with ``wait=True``."""
        await self._run(_api.unload_model(self.settings.target, model, wait, timeout))

    # --- plumbing ---

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, request: _api.Request) -> Any:
        try:
            response = await self._http.send(self._build(self._http, request))
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        return self._read(response, request)

    async def _stream(self, request: _api.Request, parse: Any) -> AsyncStream[Any]:
        try:
            response = await self._http.send(self._build(self._http, request, stream=True), stream=True)
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise self._error(response)
        return AsyncStream(response, parse, self._connection_error)

    async def _run(self, plan: _api.Plan[T]) -> T:
        """Drive a plan: send each request, sleep each pause, hand back answers and errors."""
        try:
            step = next(plan)
            while True:
                try:
                    if isinstance(step, _api.Pause):
                        await asyncio.sleep(step.seconds)
                        answer = None
                    else:
                        answer = await self._send(step)
                except Beta9Error as err:
                    step = plan.throw(err)
                    continue
                step = plan.send(answer)
        except StopIteration as done:
            return cast(T, done.value)
