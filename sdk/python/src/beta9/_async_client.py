"""AsyncClient: the same calls as Client, awaitable; streams are async iterators."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Literal, Optional, TypeVar, Union, cast, overload

import httpx

from . import _api
from ._base_client import BaseClient
from ._client import Messages, Options
from ._plan import Pause, Plan, Request
from ._streaming import AsyncStream
from .errors import Beta9Error
from .jobs import AsyncJobs
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
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, headers=self._headers, transport=transport, verify=self._verify()
        )
        #: Commands run as jobs on the gateway's machines, awaited.
        self.jobs = AsyncJobs(self)

    # --- inference ---

    @overload
    async def chat(
        self, model: str, messages: Messages, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
    ) -> ChatResult: ...
    @overload
    async def chat(
        self, model: str, messages: Messages, options: Options = ..., *, stream: Literal[True], **kwargs: Any
    ) -> AsyncStream[ChatChunk]: ...
    async def chat(
        self, model: str, messages: Messages, options: Options = None, *, stream: bool = False, **kwargs: Any
    ) -> Union[ChatResult, AsyncStream[ChatChunk]]:
        """A chat completion; options, the 512-token default cap and ``stream=True`` as for Client.chat."""
        return await self._generation(_api.chat(model, messages, options, stream, kwargs))  # type: ignore[no-any-return]

    @overload
    async def generate(
        self, model: str, prompt: str, options: Options = ..., *, stream: Literal[False] = ..., **kwargs: Any
    ) -> GenerateResult: ...
    @overload
    async def generate(
        self, model: str, prompt: str, options: Options = ..., *, stream: Literal[True], **kwargs: Any
    ) -> AsyncStream[GenerateChunk]: ...
    async def generate(
        self, model: str, prompt: str, options: Options = None, *, stream: bool = False, **kwargs: Any
    ) -> Union[GenerateResult, AsyncStream[GenerateChunk]]:
        """A text completion of ``prompt``; options, the default cap and ``stream=True`` as for chat."""
        return await self._generation(_api.generate(model, prompt, options, stream, kwargs))  # type: ignore[no-any-return]

    async def embed(self, model: str, input: Union[str, List[str]], **options: Any) -> EmbedResult:
        """Embeddings of one text (``.embedding``) or of a list (``.embeddings``, in order)."""
        call = _api.embed(model, input, options)
        protocol = (await self._speaks()).protocol
        return call.parse(protocol, await self._send(call.request(protocol)))

    async def list_models(self) -> List[Model]:
        """The models the server lists, with their ``load_state``."""
        found = await self._speaks()
        return await self._run(_api.list_models(found.protocol, self._target()))

    async def health(self) -> Health:
        """The server's liveness (needs no key)."""
        return await self._run(_api.health((await self._speaks()).protocol))

    # --- model lifecycle ---

    async def load_model(
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
        """Make ``model`` servable and wait until it answers; see ``Client.load_model``."""
        found = await self._speaks()
        return await self._run(
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

    async def unload_model(self, model: str, *, wait: bool = False, timeout: Optional[float] = None) -> bool:
        """Stop serving ``model``; see ``Client.unload_model``."""
        protocol = (await self._speaks()).protocol
        await self._run(_api.unload_model(self._target(), protocol, model, wait, timeout))
        return True

    # --- plumbing ---

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _speaks(self) -> _api.Detected:
        """The API the server speaks: known from the settings, or asked once."""
        known = self._known()
        if known is None:
            known = self._detected = await self._run(_api.detect())
        return known

    async def _generation(self, call: _api.GenerationCall) -> Any:
        protocol = (await self._speaks()).protocol
        request = call.request(protocol, self._where())
        if call.stream:
            return await self._stream(request, call.parser(protocol), ndjson=protocol == "ollama")
        return call.parser(protocol)(await self._send(request))

    async def _send(self, request: Request) -> Any:
        try:
            response = await self._http.send(self._build(self._http, request))
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        return self._read(response, request)

    async def _stream(self, request: Request, parse: Any, ndjson: bool) -> AsyncStream[Any]:
        try:
            response = await self._http.send(
                self._build(self._http, request, stream=True, ndjson=ndjson), stream=True
            )
        except httpx.HTTPError as err:
            raise self._connection_error(err) from err
        if response.status_code >= 400:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise self._error(response)
        return AsyncStream(response, parse, self._connection_error, ndjson)

    async def _run(self, plan: Plan[T]) -> T:
        """Drive a plan: send each request, sleep each pause, hand back answers and errors."""
        try:
            step = next(plan)
            while True:
                try:
                    if isinstance(step, Pause):
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
