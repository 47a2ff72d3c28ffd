"""AsyncClient against the real gateway and agent: the same calls, awaited."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest
from conftest import Stack

from beta9 import AsyncClient, AuthenticationError, NotFoundError

pytestmark = pytest.mark.stack
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_gateway(stack: Stack) -> None:
    async def run() -> Dict[str, Any]:
        async with AsyncClient(host=stack.gateway.host, port=stack.gateway.port, api_key=stack.inference_key) as c:
            health, models = await asyncio.gather(c.health(), c.list_models())
            # Two answers at once over one client.
            chat, embedded = await asyncio.gather(
                c.chat(stack.model, CAPITAL, max_tokens=16, temperature=0), c.embed(stack.model, ["a", "b"])
            )
            stream = await c.chat(stack.model, CAPITAL, max_tokens=16, stream=True)
            chunks = [chunk async for chunk in stream]
            generated = await c.generate(stack.model, "Once upon a time", max_tokens=8)
            with pytest.raises(NotFoundError):
                await c.chat("no-such-model", CAPITAL)
            return {
                "health": health.ok,
                "models": [m.id for m in models],
                "chat": chat.content,
                "dims": [len(e) for e in embedded.embeddings],
                "chunks": len(chunks),
                "streamed": stream.content,
                "usage": stream.usage,
                "generated": generated.content,
            }

    seen = asyncio.run(run())
    assert seen["health"] and stack.model in seen["models"]
    assert "Paris" in seen["chat"]
    assert seen["dims"] == [576, 576]
    assert seen["chunks"] > 3 and seen["streamed"].strip() and seen["usage"] is not None
    assert seen["generated"].strip()


def test_agent_load_and_unload(stack: Stack) -> None:
    name = "smollm2-async"

    async def run() -> tuple[str, str, bool]:
        async with AsyncClient(host=stack.agent.host, port=stack.agent.port, api_key=stack.agent_token) as c:
            status = await c.load_model(name, source=stack.model_file, context_size=2048)
            answer = await c.chat(name, CAPITAL, max_tokens=16, temperature=0)
            await c.unload_model(name)
            listed = name in [m.id for m in await c.list_models()]
            return status.state, answer.content, listed

    state, content, listed = asyncio.run(run())
    assert state == "ready" and "Paris" in content and not listed


def test_a_wrong_key(stack: Stack) -> None:
    async def run() -> None:
        async with AsyncClient(host=stack.gateway.host, port=stack.gateway.port, api_key="b9_nope") as c:
            await c.list_models()

    with pytest.raises(AuthenticationError):
        asyncio.run(run())
