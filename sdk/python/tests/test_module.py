"""The fork's calls: `from beta9 import inference`, configured by arguments or by the environment."""

from __future__ import annotations

import pytest
from conftest import Stack

from beta9 import inference

pytestmark = pytest.mark.stack
HELLO = [{"role": "user", "content": "What is the capital of France?"}]


def test_configured_by_the_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_INFERENCE_HOST", stack.gateway.host)
    monkeypatch.setenv("BETA9_INFERENCE_PORT", str(stack.gateway.port))
    monkeypatch.setenv("BETA9_API_KEY", stack.inference_key)
    assert inference.health().ok
    assert stack.model in [m.id for m in inference.list_models()]
    result = inference.chat(model=stack.model, messages=HELLO, max_tokens=16, temperature=0)
    assert "Paris" in result.content


def test_configured_by_arguments(stack: Stack) -> None:
    inference.configure(host=stack.gateway.host, port=stack.gateway.port, api_key=stack.inference_key, timeout=60)
    assert inference.settings().timeout == 60
    assert inference.generate(model=stack.model, prompt="Once upon a time", max_tokens=8).content.strip()
    assert len(inference.embed(model=stack.model, input="Hello world").embedding) == 576
    pieces = [c.content for c in inference.chat(stack.model, HELLO, max_tokens=16, stream=True)]
    assert len(pieces) > 3 and "".join(pieces).strip()


def test_configured_for_an_agent(stack: Stack) -> None:
    inference.configure(host=f"http://{stack.agent.host}:{stack.agent.port}", api_key=stack.agent_token)
    assert inference.settings().target == "agent"
    assert "Paris" in inference.chat(stack.model, HELLO, max_tokens=16, temperature=0).content
