"""The SDK against a real gateway, routing to a real agent that serves SmolLM2 on its builtin engine."""

from __future__ import annotations

import time
from typing import Iterator, List

import httpx
import pytest
from conftest import Stack

from beta9 import (
    APIConnectionError,
    AuthenticationError,
    Client,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)

pytestmark = pytest.mark.stack
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_health_needs_no_key(stack: Stack) -> None:
    with Client(host=stack.gateway.host, port=stack.gateway.port) as anonymous:
        health = anonymous.health()
    assert health.ok and health.status == "ok"
    assert health.version


def test_list_models(gateway: Client, stack: Stack) -> None:
    assert stack.model in [m.id for m in gateway.list_models()]


def test_chat(gateway: Client, stack: Stack) -> None:
    result = gateway.chat(stack.model, CAPITAL, max_tokens=16, temperature=0)
    assert "Paris" in result.content
    assert result.model == stack.model
    assert result.finish_reason in ("stop", "length")
    assert result.message["role"] == "assistant"
    assert result.usage is not None and result.usage.completion_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_chat_stream(gateway: Client, stack: Stack) -> None:
    stream = gateway.chat(stack.model, [{"role": "user", "content": "Name three colours."}], max_tokens=20, stream=True)
    chunks = list(stream)
    assert len(chunks) > 3
    assert "".join(c.content for c in chunks) == stream.content and stream.content.strip()
    assert stream.finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, "the last chunk has the usage"


def test_a_stream_closed_early_leaves_the_client_usable(gateway: Client, stack: Stack) -> None:
    with gateway.chat(stack.model, CAPITAL, max_tokens=64, stream=True) as stream:
        first = next(iter(stream))
    assert first.model == stack.model
    assert "Paris" in gateway.chat(stack.model, CAPITAL, max_tokens=16, temperature=0).content


def test_generate(gateway: Client, stack: Stack) -> None:
    result = gateway.generate(stack.model, "Once upon a time", max_tokens=12, temperature=0)
    assert result.content.strip() and result.text == result.content
    assert result.usage is not None and result.usage.completion_tokens > 0
    streamed = gateway.generate(stack.model, "Once upon a time", max_tokens=12, stream=True)
    assert len([c for c in streamed if c.content]) > 2 and streamed.content.strip()


def test_embed(gateway: Client, stack: Stack) -> None:
    one = gateway.embed(stack.model, "Hello world")
    assert len(one.embedding) == 576 and len(one.embeddings) == 1
    two = gateway.embed(stack.model, ["Hello world", "Bonjour le monde"])
    assert [len(e) for e in two.embeddings] == [576, 576]
    assert two.embeddings[0] == pytest.approx(one.embedding, rel=1e-4)
    assert two.embeddings[0] != two.embeddings[1]


def test_unknown_model_is_not_found(gateway: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        gateway.chat("no-such-model", CAPITAL)
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert "no-such-model" in caught.value.message


def test_a_wrong_key_is_refused(stack: Stack) -> None:
    with Client(host=stack.gateway.host, port=stack.gateway.port, api_key="b9_not-a-key") as stranger:
        with pytest.raises(AuthenticationError) as caught:
            stranger.list_models()
    assert caught.value.status == 401
    assert caught.value.code == "api_key_invalid"


def test_no_key_is_refused_with_what_to_send(stack: Stack) -> None:
    with Client(host=stack.gateway.host, port=stack.gateway.port) as anonymous:
        with pytest.raises(AuthenticationError) as caught:
            anonymous.chat(stack.model, CAPITAL)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    message = caught.value.message
    # One sentence: where the key goes and where keys come from.
    assert "api_key=" in message and "BETA9_API_KEY" in message and "`b9 key create NAME --scopes inference`" in message
    assert message.count(". ") == 0 and "\n" not in message


def test_an_inference_key_cannot_deploy(gateway: Client, stack: Stack) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        gateway.load_model("smollm2-other", source=stack.model_file)
    assert (caught.value.status, caught.value.code) == (403, "scope_missing")


def test_loading_an_unknown_model_without_source_says_to_give_one(gateway: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        gateway.load_model("never-deployed")
    assert "source=" in caught.value.message


def test_loading_a_model_already_served_returns_at_once(gateway: Client, stack: Stack) -> None:
    assert gateway.load_model(stack.model).state == "ready"


@pytest.fixture
def deployments(admin: Client) -> Iterator[List[str]]:
    """Names of deployments a test makes; whatever it left is removed after it, pass or fail."""
    names: List[str] = []
    yield names
    for name in names:
        try:
            admin.unload_model(name, wait=True, timeout=60)
        except NotFoundError:
            pass


def test_deploy_load_chat_unload(admin: Client, stack: Stack, deployments: List[str]) -> None:
    name = "smollm2-deployed"
    deployments.append(name)
    status = admin.load_model(name, source=stack.model_file, context_size=2048, idle_seconds=600)
    assert (status.name, status.state) == (name, "ready")
    assert name in [m.id for m in admin.list_models()]
    assert "Paris" in admin.chat(name, CAPITAL, max_tokens=16, temperature=0).content
    # Loading it again with the same source is not an error; with another source it is.
    assert admin.load_model(name, source=stack.model_file).state == "ready"
    with pytest.raises(ConflictError, match="exists with another source"):
        admin.load_model(name, source="hf:org/repo/other.gguf")
    admin.unload_model(name, wait=True, timeout=60)
    assert name not in [m.id for m in admin.list_models()]
    with pytest.raises(NotFoundError, match="removes a deployment"):
        admin.unload_model(name)


def test_load_model_brings_a_deployment_back_from_zero(
    admin: Client, gateway: Client, agent: Client, stack: Stack, deployments: List[str]
) -> None:
    name = "smollm2-scaled"
    deployments.append(name)
    admin.load_model(name, source=stack.model_file, context_size=2048)
    # Its replica goes away (as after an idle unload): stopped on the machine that served it.
    agent.unload_model(name)
    # A deployment stays listed at zero replicas; the replicas list shows it has none left.
    assert name in [m.id for m in gateway.list_models()]
    replicas_url = f"http://{stack.gateway.host}:{stack.gateway.port}/api/v1/replicas"
    auth = {"authorization": f"Bearer {stack.inference_key}"}
    deadline = time.monotonic() + 30
    while any(r["deployment"] == name for r in httpx.get(replicas_url, headers=auth).json()["replicas"]):
        assert time.monotonic() < deadline, f"the gateway still has a replica of {name} 30 s after it was stopped"
        time.sleep(0.2)
    # Listed, but it would be loaded first (the fork's load_state "idle").
    deadline = time.monotonic() + 30
    while {m.id: m.load_state for m in gateway.list_models()}[name] != "idle":
        assert time.monotonic() < deadline, f"{name} is still listed as ready 30 s after its replica went"
        time.sleep(0.2)
    # An inference key may load a deployed model: the gateway places it again.
    assert gateway.load_model(name).state == "ready"
    assert {m.id: m.load_state for m in gateway.list_models()}[name] == "ready"
    assert "Paris" in gateway.chat(name, CAPITAL, max_tokens=16, temperature=0).content


def test_a_gateway_that_is_not_running(closed_port: int) -> None:
    with Client(host="127.0.0.1", port=closed_port, api_key="b9_x") as client:
        with pytest.raises(APIConnectionError) as caught:
            client.chat("smollm2", CAPITAL)
    message = caught.value.message
    assert f"127.0.0.1:{closed_port}" in message
    assert "b9gateway" in message and "BETA9_INFERENCE_PORT" in message
