"""What is sent for the fork's options and the SDK's default cap, in each API (recorded answers)."""

from __future__ import annotations

from typing import Any, Dict

import httpx
import pytest
from recorded import CHAT, Recorder

from beta9 import APIConnectionError, Client, ValidationError
from beta9.inference import DEFAULT_MAX_TOKENS, ChatMessage, InferenceOptions

HELLO = [{"role": "user", "content": "Hello!"}]
OLLAMA_CHAT = {
    "model": "smollm2",
    "created_at": "2026-12-06T18:00:00Z",
    "message": {"role": "assistant", "content": "Hi!"},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 9,
    "eval_count": 3,
}


def openai() -> tuple[Client, Recorder]:
    rec = Recorder(lambda r: httpx.Response(200, json=CHAT))
    return Client(host="gateway.test", api_key="b9_test", transport=httpx.MockTransport(rec)), rec


def ollama() -> tuple[Client, Recorder]:
    rec = Recorder(lambda r: httpx.Response(200, json=OLLAMA_CHAT))
    return Client(host="ollama.test", port=11434, protocol="ollama", transport=httpx.MockTransport(rec)), rec


def test_the_default_cap_is_sent_in_each_api() -> None:
    assert DEFAULT_MAX_TOKENS == 512
    client, rec = openai()
    client.chat("smollm2", HELLO)
    assert rec.body()["max_tokens"] == 512
    client.generate("smollm2", "Once upon a time", stream=True)
    assert rec.body()["max_tokens"] == 512
    client, rec = ollama()
    client.chat("smollm2", HELLO)
    assert rec.body()["options"] == {"num_predict": 512} and rec.body()["stream"] is False


@pytest.mark.parametrize(
    "options,keywords",
    [({"max_tokens": None}, {}), ({"num_predict": -1}, {}), (None, {"max_tokens": None})],
    ids=["max_tokens None", "num_predict -1", "keyword max_tokens None"],
)
def test_the_cap_can_be_lifted(options: Any, keywords: Dict[str, Any]) -> None:
    client, rec = openai()
    client.chat("smollm2", HELLO, options, **keywords)
    assert "max_tokens" not in rec.body()


def test_the_forks_options_in_the_openai_api() -> None:
    client, rec = openai()
    client.chat("smollm2", [ChatMessage("user", "Hello!")], InferenceOptions(max_tokens=64, presence_penalty=0.5))
    body = rec.body()
    assert body["messages"] == HELLO
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "presence_penalty", "frequency_penalty")} == {
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 1.0,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.0,
    }
    client.chat("smollm2", HELLO, {"num_predict": 32, "top_k": 20, "stop": "\n"}, seed=7)
    assert {k: rec.body()[k] for k in ("max_tokens", "top_k", "stop", "seed")} == {
        "max_tokens": 32,
        "top_k": 20,
        "stop": "\n",
        "seed": 7,
    }


def test_the_forks_options_in_ollamas_api() -> None:
    client, rec = ollama()
    result = client.chat("smollm2", HELLO, {"temperature": 0.2, "max_tokens": 16, "num_ctx": 4096}, format="json")
    assert rec.body()["options"] == {"temperature": 0.2, "num_predict": 16, "num_ctx": 4096}
    assert rec.body()["format"] == "json" and rec.requests[-1].url.path == "/api/chat"
    assert (result.content, result.finish_reason) == ("Hi!", "stop")
    assert dict(result.usage) == {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda c: c.chat("m", HELLO, {"temprature": 1}), "options has unknown key(s) temprature"),
        (lambda c: c.chat("m", HELLO, {"max_tokens": 5}, max_tokens=6), "max_tokens is given twice"),
        (lambda c: c.chat("m", HELLO, {"max_tokens": 5, "num_predict": 6}), "num_predict and max_tokens"),
        (lambda c: c.chat("m", HELLO, {"num_predict": 0}), "num_predict must be a whole number"),
        (lambda c: c.chat("m", HELLO, "hot"), "options must be a dict"),
        (lambda c: c.chat("m", HELLO, {"mirostat": 2}), "mirostat: only Ollama's API takes this option"),
        (lambda c: c.load_model("m", keep_alive="5m"), "keep_alive must be a whole number of seconds"),
        (lambda c: c.load_model("m", 5, keep_alive=5), "keep_alive is given twice"),
    ],
)
def test_refused_before_sending(call: Any, message: str) -> None:
    client = Client(host="gateway.test", api_key="b9_test", transport=httpx.MockTransport(_never))
    with pytest.raises(ValidationError) as caught:
        call(client)
    assert message in caught.value.message


def test_fields_ollamas_api_lacks_are_refused() -> None:
    client = Client(host="ollama.test", protocol="ollama", transport=httpx.MockTransport(_never))
    with pytest.raises(ValidationError, match="response_format: the server at http://ollama.test:1994 speaks"):
        client.chat("m", HELLO, response_format={"type": "json_object"})


def test_ollamas_port_refused_says_where_beta9_listens() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    client = Client(host="gpu-box", port=11434, api_key="b9_x", transport=httpx.MockTransport(refused))
    with pytest.raises(APIConnectionError) as caught:
        client.chat("m", HELLO)
    assert "11434 is Ollama's port, which Beta9 machines do not open" in caught.value.message
    assert "gateway (port 1994, an API key)" in caught.value.message


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should have been sent, but {request.method} {request.url} was")
