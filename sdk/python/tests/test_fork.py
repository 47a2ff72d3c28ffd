"""The fork's SDK code, run as its users wrote it (see fork/SOURCES.md): its documented examples against
the real gateway, an agent and an Ollama-only endpoint, its signatures, options and result attributes."""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import httpx
import pytest
from conftest import Endpoint, Stack

from beta9 import AsyncClient, AuthenticationError, Client, ValidationError, _sampling, inference
from beta9.inference import ChatMessage, InferenceClient, InferenceOptions

pytestmark = pytest.mark.stack
FORK = Path(__file__).parent / "fork"
README_CONFIGURE = 'inference.configure(host="100.100.74.117", port=11434)'
# The models the fork's examples name, served here from the test model.
FORK_MODELS = ("llama3.2", "nomic-embed-text")
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def fork_models(stack: Stack) -> Iterator[None]:
    """llama3.2 and nomic-embed-text served by the agent, and listed by the gateway."""
    with Client(host=stack.agent.host, port=stack.agent.port, api_key=stack.agent_token) as agent:
        for name in FORK_MODELS:
            agent.load_model(name, source=stack.model_file, context_size=2048)
        with Client(host=stack.gateway.host, port=stack.gateway.port, api_key=stack.inference_key) as gateway:
            _wait(lambda: set(FORK_MODELS) <= {m.id for m in gateway.list_models()}, "the gateway to list them")
        yield
        for name in FORK_MODELS:
            agent.unload_model(name)


def _wait(ready: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, f"waited {seconds:g} s for {what}"
        time.sleep(0.2)


def run_example(name: str, where: Optional[Endpoint] = None) -> Dict[str, Any]:
    """Run a fork example; only the README's configure() line is pointed at ``where``."""
    text = (FORK / name).read_text()
    if where is not None:
        assert README_CONFIGURE in text
        text = text.replace(README_CONFIGURE, f'inference.configure(host="{where.host}", port={where.port})')
    scope: Dict[str, Any] = {"__name__": "fork_example"}
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(text, str(FORK / name), "exec"), scope)
    scope["printed"] = printed.getvalue()
    return scope


def check_example(scope: Dict[str, Any]) -> None:
    assert scope["result"].ok and scope["result"].error is None
    assert scope["result"].content.strip()
    # Neither call set max_tokens: the SDK's cap stopped them.
    assert scope["result"].usage["completion_tokens"] <= _sampling.DEFAULT_MAX_TOKENS
    assert len(scope["embedding"].embedding) == 576 and scope["embedding"].ok
    listed = {m.name: m.load_state for m in scope["models"]}
    assert listed["llama3.2"] == "ready" and listed["nomic-embed-text"] == "ready"


def test_the_readme_example_against_the_gateway(
    stack: Stack, fork_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BETA9_API_KEY", stack.inference_key)
    scope = run_example("readme_python_sdk.py", stack.gateway)
    check_example(scope)
    assert scope["printed"].strip(), "the chat's answer is printed"


def test_the_readme_example_against_an_agent(stack: Stack, fork_models: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_API_KEY", stack.agent_token)
    check_example(run_example("readme_python_sdk.py", stack.agent))


def test_the_readme_example_against_an_ollama_server(ollama_only: Endpoint, fork_models: None) -> None:
    scope = run_example("readme_python_sdk.py", ollama_only)
    check_example(scope)
    # No key, no /health, but /api/version: the client found Ollama's API and spoke it.
    assert inference.get_client()._speaks().protocol == "ollama"
    assert scope["result"].raw["done"] is True, "an answer in Ollama's shape"


def test_the_module_docstring_example(stack: Stack, fork_models: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("BETA9_INFERENCE_HOST", stack.gateway.host),
        ("BETA9_INFERENCE_PORT", str(stack.gateway.port)),
        ("BETA9_API_KEY", stack.inference_key),
    ):
        monkeypatch.setenv(name, value)
    scope = run_example("inference_module_example.py")
    check_example(scope)
    assert "llama3.2: ready" in scope["printed"] and "nomic-embed-text: ready" in scope["printed"]


# --- configure() in the fork's order, and its client ---


def test_configure_takes_host_port_timeout_in_the_forks_order(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_API_KEY", stack.inference_key)
    inference.configure(stack.gateway.host, stack.gateway.port, 60)
    assert (inference.settings().port, inference.settings().timeout) == (stack.gateway.port, 60)
    assert inference.health()
    with pytest.raises(ValidationError, match="third argument is timeout, so pass a key as api_key="):
        inference.configure(stack.gateway.host, stack.gateway.port, stack.inference_key)  # type: ignore[arg-type]


def test_the_forks_client_class(stack: Stack) -> None:
    with InferenceClient(stack.gateway.host, stack.gateway.port, 30, api_key=stack.inference_key) as client:
        assert client.base_url == f"http://{stack.gateway.host}:{stack.gateway.port}"
        assert client.settings.timeout == 30
        assert "Paris" in client.chat(stack.model, CAPITAL, {"temperature": 0, "num_predict": 16}).content


# --- without a key ---


def test_an_agent_asked_without_a_key_says_where_its_token_is(stack: Stack) -> None:
    inference.configure(host=stack.agent.host, port=stack.agent.port)
    with pytest.raises(AuthenticationError) as caught:
        inference.chat(stack.model, CAPITAL)
    message = caught.value.message
    assert message.startswith(f"the Beta9 agent's control API at http://{stack.agent.host}:{stack.agent.port} needs")
    assert "api_key=" in message and "BETA9_API_KEY" in message and "machine.token" in message
    assert "~/.b9agent/config.yaml" in message and ". " not in message


# --- options: honoured in each API, never dropped ---


@pytest.fixture(params=["gateway", "agent", "ollama"])
def fork_endpoint(request: pytest.FixtureRequest, stack: Stack) -> Iterator[None]:
    """inference configured the fork's way for each kind of server."""
    if request.param == "ollama":
        where = request.getfixturevalue("ollama_only")
        inference.configure(where.host, where.port)
    elif request.param == "agent":
        inference.configure(stack.agent.host, stack.agent.port, api_key=stack.agent_token)
    else:
        inference.configure(stack.gateway.host, stack.gateway.port, api_key=stack.inference_key)
    yield


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0, "num_predict": 5},
        {"temperature": 0, "max_tokens": 5},
        InferenceOptions(temperature=0, max_tokens=5),
    ],
    ids=["num_predict", "max_tokens", "InferenceOptions"],
)
def test_options_as_the_fork_passed_them(fork_endpoint: None, stack: Stack, options: Any) -> None:
    story = inference.generate(stack.model, "Once upon a time", options=options)
    assert (story.usage["completion_tokens"], story.finish_reason) == (5, "length")
    chat = inference.chat(stack.model, [ChatMessage("user", "Tell me a long story.")], options)
    assert chat.usage["completion_tokens"] == 5 and chat.usage.completion_tokens == 5
    assert chat.usage["prompt_tokens"] > 0 and chat.ok and chat.error is None


def test_temperature_zero_is_honoured(fork_endpoint: None, stack: Stack) -> None:
    answers = {inference.chat(stack.model, CAPITAL, {"temperature": 0, "num_predict": 12}).content for _ in range(2)}
    assert len(answers) == 1 and "Paris" in answers.pop()


def test_the_default_cap_is_applied(fork_endpoint: None, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sampling, "DEFAULT_MAX_TOKENS", 7)
    story = inference.generate(stack.model, "Once upon a time", {"temperature": 0})
    assert (story.usage["completion_tokens"], story.finish_reason) == (7, "length")
    long_story = [{"role": "user", "content": "Tell me a long story."}]
    streamed = inference.chat(stack.model, long_story, {"temperature": 0}, stream=True)
    assert len([c for c in streamed if c.content]) <= 7 and streamed.finish_reason == "length"
    longer = inference.generate(stack.model, "Once upon a time", {"temperature": 0}, max_tokens=9)
    assert longer.usage["completion_tokens"] == 9


def test_an_unknown_option_is_refused(fork_endpoint: None, stack: Stack) -> None:
    with pytest.raises(ValidationError, match="options has unknown key"):
        inference.chat(stack.model, CAPITAL, {"temprature": 0})


def test_ollama_only_options_need_ollamas_api(stack: Stack, ollama_only: Endpoint) -> None:
    inference.configure(stack.gateway.host, stack.gateway.port, api_key=stack.inference_key)
    with pytest.raises(ValidationError, match="num_ctx: only Ollama's API takes this option"):
        inference.chat(stack.model, CAPITAL, {"num_ctx": 4096})
    inference.configure(ollama_only.host, ollama_only.port)
    assert inference.chat(stack.model, CAPITAL, {"num_ctx": 4096, "top_k": 1, "num_predict": 4}).ok


def test_streaming_over_ollamas_api(stack: Stack, ollama_only: Endpoint) -> None:
    inference.configure(ollama_only.host, ollama_only.port)
    stream = inference.chat(stack.model, CAPITAL, {"temperature": 0, "num_predict": 12}, stream=True)
    chunks = list(stream)
    assert len(chunks) > 3 and "Paris" in stream.content
    assert stream.usage is not None and stream.usage["completion_tokens"] > 0
    assert chunks[-1].raw["done"] is True


def test_the_gateways_ollama_api_when_asked_for(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_INFERENCE_PROTOCOL", "ollama")
    inference.configure(stack.gateway.host, stack.gateway.port, api_key=stack.inference_key)
    answer = inference.chat(stack.model, CAPITAL, {"temperature": 0, "num_predict": 12})
    assert "Paris" in answer.content and answer.raw["done"] is True
    assert len(inference.embed(stack.model, ["Hello", "world"]).embeddings) == 2
    assert {m.name: m.load_state for m in inference.list_models()}[stack.model] == "ready"
    assert inference.health().version


def test_async_over_ollamas_api(stack: Stack, ollama_only: Endpoint) -> None:
    async def run() -> tuple[str, str, str]:
        async with AsyncClient(host=ollama_only.host, port=ollama_only.port) as client:
            answer = await client.chat(stack.model, CAPITAL, {"temperature": 0, "num_predict": 12})
            # Greedy: sampled, the story may end (finish "stop") before its sixth token.
            options = {"num_predict": 6, "temperature": 0}
            stream = await client.generate(stack.model, "Once upon a time", options, stream=True)
            pieces = [c.content async for c in stream]
            assert len(pieces) >= 6 and stream.finish_reason == "length"
            return (await client._speaks()).protocol, answer.content, stream.content

    protocol, answer, story = asyncio.run(run())
    assert protocol == "ollama" and "Paris" in answer and story.strip()


# --- models: load_state, load_model(keep_alive=) ---


def test_load_model_with_keep_alive_on_an_agent(stack: Stack) -> None:
    inference.configure(stack.agent.host, stack.agent.port, api_key=stack.agent_token)
    name = "smollm2-keep"
    assert inference.load_model(name, source=stack.model_file, keep_alive=-1)
    assert {m.name: m.load_state for m in inference.list_models()}[name] == "ready"
    # The fork unloaded with keep_alive=0, and took keep_alive as the second argument.
    assert inference.load_model(name, 0).state == "unloaded"
    assert name not in [m.name for m in inference.list_models()]
    with pytest.raises(ValidationError, match="an agent serves a model until it is stopped"):
        inference.load_model(stack.model, keep_alive=300)


def test_load_model_with_keep_alive_on_the_gateway(stack: Stack) -> None:
    inference.configure(stack.gateway.host, stack.gateway.port, api_key=stack.admin_key)
    name = "smollm2-kept"
    try:
        assert inference.load_model(name, source=stack.model_file, keep_alive=-1, context_size=2048)
        deployment = httpx.get(
            f"http://{stack.gateway.host}:{stack.gateway.port}/api/v1/deployments/{name}",
            headers={"authorization": f"Bearer {stack.admin_key}"},
        ).json()
        assert deployment["min_replicas"] == 1, "kept loaded: one replica always"
        with pytest.raises(ValidationError, match="pass keep_alive with source= when deploying it"):
            inference.load_model(name, keep_alive=600)
    finally:
        assert inference.load_model(name, keep_alive=0).state == "unloaded"
    assert name not in [m.name for m in inference.list_models()]


def test_load_model_over_ollamas_api(stack: Stack, ollama_only: Endpoint) -> None:
    inference.configure(ollama_only.host, ollama_only.port)
    status = inference.load_model(stack.model, keep_alive=-1)
    assert status and status.state == "ready" and status.raw["done_reason"] == "load"
    listed = {m.name: m for m in inference.list_models()}
    assert listed[stack.model].load_state == "ready" and listed[stack.model].size_gb > 0
