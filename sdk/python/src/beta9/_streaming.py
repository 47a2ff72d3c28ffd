"""Streamed answers: iterate the chunks as they come; close the stream to stop the generation early.

The OpenAI API streams server-sent events; Ollama's streams one JSON object a line (NDJSON), the last
with ``"done": true``.
"""

from __future__ import annotations

from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Dict,
    Generator,
    Generic,
    Iterator,
    List,
    Optional,
    TypeVar,
)

import httpx

from ._api import stream_error
from ._base_client import parse_event
from ._sse import SSEDecoder
from .errors import Beta9Error
from .types import Usage

T = TypeVar("T")


class _BaseStream(Generic[T]):
    """What Stream and AsyncStream share: reading an event into a chunk, and what the stream has said
    so far (all the text, the finish reason, the token counts). Each reads the lines its own way."""

    def __init__(
        self,
        response: httpx.Response,
        parse: Callable[[Dict[str, Any]], T],
        on_transport_error: Callable[[httpx.HTTPError], Beta9Error],
        ndjson: bool = False,
    ) -> None:
        self.content = ""
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Usage] = None
        self.model: Optional[str] = None
        self._response = response
        self._parse = parse
        self._on_transport_error = on_transport_error
        self._ndjson = ndjson
        self._decoder = SSEDecoder()
        self._ended = False

    def _line(self, line: str) -> List[T]:
        """The chunks a line completes (none, or one); after the stream's end, none."""
        if self._ended:
            return []
        if self._ndjson:
            if not line.strip():
                return []
            event = parse_event(line)
            chunk = self._event(event)
            self._ended = isinstance(event, dict) and event.get("done") is True
            return [chunk]
        data = self._decoder.feed(line)
        return self._data(data) if data is not None else []

    def _rest(self) -> List[T]:
        """The chunk of an event the stream ended without a blank line after."""
        if self._ended or self._ndjson:
            return []
        data = self._decoder.flush()
        return self._data(data) if data is not None else []

    def _data(self, data: str) -> List[T]:
        chunk = self._chunk(data)
        if chunk is None:
            self._ended = True
            return []
        return [chunk]

    def _chunk(self, data: str) -> Optional[T]:
        """The chunk an event's data holds, noted; None for the end of the stream; an error event is raised."""
        if data.strip() == "[DONE]":
            return None
        return self._event(parse_event(data))

    def _event(self, event: Any) -> T:
        if isinstance(event, dict) and "error" in event:
            raise stream_error(event)
        chunk = self._parse(event if isinstance(event, dict) else {})
        self._note(chunk)
        return chunk

    def _note(self, chunk: Any) -> None:
        self.content += chunk.content
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage
        self.model = chunk.model or self.model


class Stream(_BaseStream[T]):
    """Chunks of a streamed answer. After the loop, ``content``, ``finish_reason`` and ``usage`` hold
    the whole answer. Use it in a ``with`` block, or call ``close()``, to stop early."""

    def __init__(
        self,
        response: httpx.Response,
        parse: Callable[[Dict[str, Any]], T],
        on_transport_error: Callable[[httpx.HTTPError], Beta9Error],
        ndjson: bool = False,
    ) -> None:
        super().__init__(response, parse, on_transport_error, ndjson)
        self._chunks = self._iterate()

    def _iterate(self) -> Generator[T, None, None]:
        try:
            for line in self._response.iter_lines():
                yield from self._line(line)
                if self._ended:
                    return
            yield from self._rest()
        except httpx.HTTPError as err:
            raise self._on_transport_error(err) from err
        finally:
            self._response.close()

    def __iter__(self) -> Iterator[T]:
        return self._chunks

    def __next__(self) -> T:
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading; the server stops generating when the connection goes."""
        self._chunks.close()
        self._response.close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(_BaseStream[T]):
    """The async twin of Stream: ``async for chunk in stream``; ``async with`` or ``aclose()``."""

    def __init__(
        self,
        response: httpx.Response,
        parse: Callable[[Dict[str, Any]], T],
        on_transport_error: Callable[[httpx.HTTPError], Beta9Error],
        ndjson: bool = False,
    ) -> None:
        super().__init__(response, parse, on_transport_error, ndjson)
        self._chunks = self._iterate()

    async def _iterate(self) -> AsyncGenerator[T, None]:
        try:
            async for line in self._response.aiter_lines():
                for chunk in self._line(line):
                    yield chunk
                if self._ended:
                    return
            for chunk in self._rest():
                yield chunk
        except httpx.HTTPError as err:
            raise self._on_transport_error(err) from err
        finally:
            await self._response.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._chunks

    async def __anext__(self) -> T:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        await self._response.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
