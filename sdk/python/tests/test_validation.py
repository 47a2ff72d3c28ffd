"""Wrong arguments are refused before anything is sent, with a sentence saying what would be right."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest
from recorded import Recorder, never

from beta9 import Client, ValidationError

HELLO = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
def client() -> Client:
    return Client(host="gateway.test", api_key="b9_test", transport=httpx.MockTransport(never))


CASES: list[tuple[str, Callable[[Client], Any], str]] = [
    ("empty model", lambda c: c.chat("", HELLO), "model must name a model"),
    ("model not a string", lambda c: c.chat(None, HELLO), "model must name a model"),
    ("model with a space", lambda c: c.chat("small model", HELLO), "not a valid model name"),
    ("messages a string", lambda c: c.chat("m", "Hello!"), "messages must be a list"),
    ("messages empty", lambda c: c.chat("m", []), "messages is empty"),
    ("message not a dict", lambda c: c.chat("m", ["Hello!"]), "messages[0] must be a dict"),
    ("unknown role", lambda c: c.chat("m", [{"role": "usr", "content": "x"}]), 'messages[0]["role"] must be one of'),
    ("no content", lambda c: c.chat("m", [{"role": "user"}]), 'messages[0] has no "content"'),
    ("content a number", lambda c: c.chat("m", [{"role": "user", "content": 5}]), "must be a string"),
    ("stream not a bool", lambda c: c.chat("m", HELLO, stream="yes"), "stream must be True or False"),
    ("max_tokens zero", lambda c: c.chat("m", HELLO, max_tokens=0), "max_tokens must be a whole number of at least 1"),
    ("temperature too high", lambda c: c.chat("m", HELLO, temperature=7), "temperature must be a number from 0 to 2"),
    ("stop a number", lambda c: c.chat("m", HELLO, stop=3), "stop must be a string or a list"),
    ("option not JSON", lambda c: c.chat("m", HELLO, metadata=object()), "every option must be JSON"),
    ("prompt empty", lambda c: c.generate("m", ""), "prompt is empty"),
    ("prompt a list", lambda c: c.generate("m", ["a"]), "prompt must be a string"),
    ("embed input empty list", lambda c: c.embed("m", []), "input must be a string or a non-empty list"),
    ("embed input with a number", lambda c: c.embed("m", ["a", 2]), "input[1] must be a non-empty string"),
    ("load engine unknown", lambda c: c.load_model("m", "hf:a/b/c.gguf", engine="turbo"), "engine must be one of"),
    ("load sha256 without source", lambda c: c.load_model("m", sha256="a" * 64), "pass it together with source="),
    ("load bad context", lambda c: c.load_model("m", "x", context_size=10), "context_size must be a whole number"),
    ("load unknown option", lambda c: c.load_model("m", "x", replicas=2), "unknown option(s) replicas"),
    ("load timeout negative", lambda c: c.load_model("m", "x", timeout=-1), "timeout must be a number"),
    ("unload wait not bool", lambda c: c.unload_model("m", wait="soon"), "wait must be True or False"),
]


@pytest.mark.parametrize("what,call,message", CASES, ids=[c[0] for c in CASES])
def test_refused_before_sending(client: Client, what: str, call: Callable[[Client], Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        call(client)
    assert message in caught.value.message
    assert isinstance(caught.value, ValueError), "a ValidationError is also a ValueError"


def test_deployment_options_are_refused_by_an_agent() -> None:
    agent = Client(host="agent.test", api_key="b9m_token", transport=httpx.MockTransport(never))
    with pytest.raises(ValidationError, match="only the gateway takes these"):
        agent.load_model("m", "x", min_replicas=1)


def test_a_good_chat_sends_the_options_as_given() -> None:
    from recorded import CHAT

    rec = Recorder(lambda r: httpx.Response(200, json=CHAT))
    client = Client(host="gateway.test", api_key="b9_test", transport=httpx.MockTransport(rec))
    client.chat("smollm2", HELLO, max_tokens=5, temperature=0, stop=["\n"])
    assert rec.body() == {"model": "smollm2", "messages": HELLO, "max_tokens": 5, "temperature": 0, "stop": ["\n"]}
    assert rec.requests[0].headers["authorization"] == "Bearer b9_test"
    assert str(rec.requests[0].url) == "http://gateway.test:1994/v1/chat/completions"
