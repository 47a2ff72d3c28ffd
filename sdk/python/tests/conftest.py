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
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from beta9 import Client, _settings, inference


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
    return _free_port()


@pytest.fixture(scope="session")
def ollama_only(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """What a plain Ollama on the network looks like to a client: no key, Ollama's /api and /v1, no
    /health. The real nginx (Debian's) serves it, in front of the gateway's Ollama-compatible API,
    holding an inference key itself."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.fail("nginx is needed for the Ollama-only endpoint (apt-get install nginx-light)")
    home = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    gateway = f"http://{stack.gateway.host}:{stack.gateway.port}"
    conf = home / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log info;
{"user root;" if os.getuid() == 0 else ""}
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {home}/body;
  proxy_temp_path {home}/proxy;
  fastcgi_temp_path {home}/fastcgi;
  uwsgi_temp_path {home}/uwsgi;
  scgi_temp_path {home}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = / {{ return 200 "Ollama is running"; }}
    location ~ ^/(api|v1)/ {{
      proxy_pass {gateway};
      proxy_http_version 1.1;
      proxy_set_header Authorization "Bearer {stack.inference_key}";
      proxy_buffering off;
      proxy_read_timeout 10m;
    }}
    location / {{ return 404 "404 page not found"; }}
  }}
}}
"""
    )
    conf.chmod(0o600)  # it holds a key
    proc = subprocess.Popen(
        [nginx, "-p", str(home), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, proc, home)
        yield Endpoint("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen, home: Path) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (home / "error.log").read_text() if (home / "error.log").exists() else ""
            pytest.fail(f"nginx exited ({proc.returncode}): {proc.stdout.read() if proc.stdout else b''!r} {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within 15 s")


@pytest.fixture(autouse=True)
def _fresh_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, with no BETA9_INFERENCE_* or BETA9_API_KEY unless it sets them."""
    for name in ("BETA9_INFERENCE_HOST", "BETA9_INFERENCE_PORT", "BETA9_API_KEY", "BETA9_INFERENCE_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    _forget_configuration()
    yield
    _forget_configuration()


def _forget_configuration() -> None:
    _settings.configured.clear()
    inference._default = None
