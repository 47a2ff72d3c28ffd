"""The SDK against one agent directly: its authenticated /v1 and its control API (load, unload)."""

from __future__ import annotations

import pytest
from conftest import Stack

from beta9 import APIConnectionError, AuthenticationError, Client, NotFoundError, ValidationError

pytestmark = pytest.mark.stack
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def test_the_machine_token_selects_the_agent(agent: Client, stack: Stack) -> None:
    assert agent.settings.target == "agent"
    assert agent.health().ok


def test_inference(agent: Client, stack: Stack) -> None:
    assert stack.model in [m.id for m in agent.list_models()]
    result = agent.chat(stack.model, CAPITAL, max_tokens=16, temperature=0)
    assert "Paris" in result.content and result.model == stack.model
    stream = agent.chat(stack.model, CAPITAL, max_tokens=16, stream=True)
    assert len(list(stream)) > 3 and stream.content.strip()
    assert stream.usage is not None and stream.usage.completion_tokens > 0
    assert agent.generate(stack.model, "The sky is", max_tokens=8).content.strip()
    assert len(agent.embed(stack.model, "Hello").embedding) == 576


def test_load_chat_unload(agent: Client, stack: Stack) -> None:
    name = "smollm2-direct"
    status = agent.load_model(name, source=stack.model_file, context_size=2048)
    assert (status.name, status.state, status.engine) == (name, "ready", "builtin")
    assert status.memory_bytes and status.memory_bytes > 0
    assert status.context_size == 2048
    assert name in [m.id for m in agent.list_models()]
    assert "Paris" in agent.chat(name, CAPITAL, max_tokens=16, temperature=0).content
    agent.unload_model(name)
    assert name not in [m.id for m in agent.list_models()]
    with pytest.raises(NotFoundError) as caught:
        agent.chat(name, CAPITAL)
    assert caught.value.code == "model_not_found"
    with pytest.raises(NotFoundError):
        agent.unload_model(name)


def test_a_model_in_the_store_starts_without_source(agent: Client, stack: Stack) -> None:
    name = "smollm2-stored"
    agent.load_model(name, source=stack.model_file)
    agent.unload_model(name)
    assert agent.load_model(name).state == "ready", "pulled once, it starts again from the store"
    agent.unload_model(name)


def test_a_wrong_token_is_refused(stack: Stack) -> None:
    with Client(host=stack.agent.host, port=stack.agent.port, api_key="b9m_wrong") as stranger:
        with pytest.raises(AuthenticationError) as caught:
            stranger.list_models()
    assert (caught.value.status, caught.value.code) == (401, "credential_invalid")


def test_deployment_options_are_for_the_gateway(agent: Client, stack: Stack) -> None:
    with pytest.raises(ValidationError, match="only the gateway takes these"):
        agent.load_model(stack.model, min_replicas=1)


def test_an_agent_that_is_not_running(closed_port: int) -> None:
    with Client(host="127.0.0.1", port=closed_port, api_key="b9m_x") as client:
        with pytest.raises(APIConnectionError) as caught:
            client.load_model("smollm2")
    assert "agent's control API" in caught.value.message and "b9agent" in caught.value.message
