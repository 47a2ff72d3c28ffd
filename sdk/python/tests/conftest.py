"""Fixtures. The tests marked ``stack`` talk to a real gateway and agent, which the vitest runner
(packages/test-utils/test/python-sdk.test.ts) starts and describes in the environment:

    BETA9_TEST_GATEWAY_URL      the gateway, e.g. http://127.0.0.1:41234
    BETA9_TEST_INFERENCE_KEY    an API key with the inference scope
    BETA9_TEST_ADMIN_KEY        the gateway's admin key
    BETA9_TEST_AGENT_URL        the agent's control API
    BETA9_TEST_AGENT_TOKEN      the agent's machine token
    BETA9_TEST_SERVED_MODEL     the model the agent serves (SmolLM2-135M)
    BETA9_TEST_MODEL            the model file, for load_model(source=...)

Without them those tests are skipped (the runner fails a run that skipped any).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from beta9 import Client, _base_client, inference


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True)
class Stack:
    gateway: Endpoint
    agent: Endpoint
    inference_key: str
    admin_key: str
    agent_token: str
    model: str
    model_file: str


_NAMES = (
    "BETA9_TEST_GATEWAY_URL",
    "BETA9_TEST_INFERENCE_KEY",
    "BETA9_TEST_ADMIN_KEY",
    "BETA9_TEST_AGENT_URL",
    "BETA9_TEST_AGENT_TOKEN",
    "BETA9_TEST_SERVED_MODEL",
    "BETA9_TEST_MODEL",
)


def _endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"not a URL with a port: {url}"
    return Endpoint(parts.hostname, parts.port)


@pytest.fixture(scope="session")
def stack() -> Stack:
    missing = [n for n in _NAMES if not os.environ.get(n)]
    if missing:
        pytest.skip(f"no running stack ({', '.join(missing)} unset): run it through the vitest runner")
    env = os.environ
    return Stack(
        gateway=_endpoint(env["BETA9_TEST_GATEWAY_URL"]),
        agent=_endpoint(env["BETA9_TEST_AGENT_URL"]),
        inference_key=env["BETA9_TEST_INFERENCE_KEY"],
        admin_key=env["BETA9_TEST_ADMIN_KEY"],
        agent_token=env["BETA9_TEST_AGENT_TOKEN"],
        model=env["BETA9_TEST_SERVED_MODEL"],
        model_file=env["BETA9_TEST_MODEL"],
    )


@pytest.fixture
def gateway(stack: Stack) -> Iterator[Client]:
    with Client(host=stack.gateway.host, port=stack.gateway.port, api_key=stack.inference_key) as client:
        yield client


@pytest.fixture
def admin(stack: Stack) -> Iterator[Client]:
    with Client(host=stack.gateway.host, port=stack.gateway.port, api_key=stack.admin_key) as client:
        yield client


@pytest.fixture
def agent(stack: Stack) -> Iterator[Client]:
    with Client(host=stack.agent.host, port=stack.agent.port, api_key=stack.agent_token) as client:
        yield client


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, with no BETA9_INFERENCE_* or BETA9_API_KEY unless it sets them."""
    for name in ("BETA9_INFERENCE_HOST", "BETA9_INFERENCE_PORT", "BETA9_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    _forget_configuration()
    yield
    _forget_configuration()


def _forget_configuration() -> None:
    _base_client.configured.clear()
    inference._default = None
