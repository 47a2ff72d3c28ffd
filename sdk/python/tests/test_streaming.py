"""Streams, from recorded event streams: chunks in order, the final usage, an error event raised."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from recorded import USAGE_CHUNK, Recorder, chunk, sse

from beta9 import AsyncClient, Client, StreamError

HELLO = [{"role": "user", "content": "Hello!"}]


def streaming(body: bytes) -> tuple[Client, Recorder]:
    rec = Recorder(lambda r: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    return Client(host="gw", protocol="openai", transport=httpx.MockTransport(rec)), rec


def test_chunks_then_usage() -> None:
    client, rec = streaming(
        sse(chunk("", role="assistant"), chunk("Par"), chunk("is"), chunk(None, "stop"), USAGE_CHUNK)
    )
    stream = client.chat("smollm2", HELLO, stream=True)
    pieces = [c.content for c in stream]
    assert pieces == ["", "Par", "is", "", ""]
    assert (stream.content, stream.finish_reason) == ("Paris", "stop")
    assert stream.usage is not None and stream.usage.total_tokens == 13
    assert rec.body()["stream"] is True and rec.body()["stream_options"] == {"include_usage": True}
    assert rec.requests[0].headers["accept"] == "text/event-stream"


def test_an_error_event_is_raised() -> None:
    lost = {
        "error": {
            "message": "the machine serving this request went away; retry it",
            "type": "server_error",
            "code": "worker_lost",
        }
    }
    client, _ = streaming(sse(chunk("Hel"), lost, done=False))
    stream = client.chat("smollm2", HELLO, stream=True)
    seen = []
    with pytest.raises(StreamError) as caught:
        for c in stream:
            seen.append(c.content)
    assert seen == ["Hel"]
    assert caught.value.code == "worker_lost"


def test_generate_stream_reads_text() -> None:
    event = {
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": " upon", "finish_reason": None}],
    }
    client, rec = streaming(sse(event, event))
    assert [c.text for c in client.generate("m", "Once", stream=True)] == [" upon", " upon"]
    assert rec.requests[0].url.path == "/v1/completions"


def test_an_error_before_the_stream_starts_is_raised_by_the_call() -> None:
    body = {"error": {"message": "no such model", "type": "invalid_request_error", "code": "model_not_found"}}
    client = Client(host="gw", transport=httpx.MockTransport(lambda r: httpx.Response(404, json=body)))
    with pytest.raises(Exception) as caught:
        client.chat("nope", HELLO, stream=True)
    assert getattr(caught.value, "code", None) == "model_not_found"


def test_async_stream() -> None:
    body = sse(chunk("a"), chunk("b", "length"), USAGE_CHUNK)

    async def run() -> tuple[list[str], str]:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
        )
        async with AsyncClient(host="gw", protocol="openai", transport=transport) as client:
            stream = await client.chat("m", HELLO, stream=True)
            got = [c.content async for c in stream]
            return got, stream.content

    got, content = asyncio.run(run())
    assert got == ["a", "b", ""]
    assert content == "ab"
