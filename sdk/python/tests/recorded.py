"""Answers recorded from a real gateway, served by httpx.MockTransport for the unit tests, which check
what is hard to provoke from a live server (a stream cut off mid-way, a rate limit) or needs no server
(argument checks, settings)."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional

import httpx

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "smollm2",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 36, "completion_tokens": 8, "total_tokens": 44},
}


def chunk(content: Optional[str], finish: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "smollm2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "model": "smollm2",
    "choices": [],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
}


def sse(*events: Any, done: bool = True) -> bytes:
    parts = [": keep-alive\n\n"]
    parts += [f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


class Recorder:
    """A MockTransport handler that answers from a function and remembers every request."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: List[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def body(self, i: int = -1) -> Dict[str, Any]:
        return json.loads(self.requests[i].content)


def never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should have been sent, but {request.method} {request.url} was")
