"""Where the SDK sends requests: host, port, key, scheme, timeout, CA file, the kind of server and the
API it speaks.

Each setting comes from the first of: the argument, ``inference.configure()``, the environment
(``BETA9_INFERENCE_HOST``, ``BETA9_INFERENCE_PORT``, ``BETA9_API_KEY``, ``BETA9_CA_FILE``,
``BETA9_INFERENCE_PROTOCOL``), the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlsplit

from .errors import ValidationError

GATEWAY_PORT = 1994
AGENT_PORT = 9999
# A request may be held while its model loads from zero (the gateway allows 5 min by default); the
# connect phase keeps its own short limit, so a host that is down still fails fast.
DEFAULT_TIMEOUT = 600.0
TARGETS = ("gateway", "agent")
#: "openai": /v1 (Beta9 gateways and agents, vLLM, llama.cpp, …); "ollama": /api (Ollama, the gateway's /api).
PROTOCOLS = ("openai", "ollama")
# An agent's control API takes its machine credential; gateway API keys start with "b9_".
MACHINE_TOKEN_PREFIX = "b9m_"
API_KEY_PREFIX = "b9_"
#: Every setting, in the order Client() and configure() take them.
NAMES = ("host", "port", "api_key", "scheme", "timeout", "target", "ca_file", "protocol")

# What inference.configure() set: the defaults every client in this process starts from.
configured: Dict[str, Any] = {}


def given(**settings: Any) -> Dict[str, Any]:
    """The settings a call named (those left None are not given)."""
    return {name: settings[name] for name in NAMES if settings.get(name) is not None}


def configure(settings: Dict[str, Any]) -> None:
    """Replace configure()'s settings, once they are known to be good."""
    resolve(settings, {})  # refuse bad settings now, not at the first call
    configured.clear()
    configured.update(settings)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    #: Kept out of repr(), so that printing the settings never shows the secret.
    api_key: Optional[str] = field(repr=False)
    scheme: str
    timeout: float
    #: "gateway" (API key; load/unload are deployments) or "agent" (machine token; control API).
    target: str
    #: A PEM file of the CA that signed the server's certificate, trusted besides the system's.
    ca_file: Optional[str] = None
    #: The API to speak; None: found from what the server answers, unless the key is a Beta9 one.
    protocol: Optional[str] = None

    @property
    def beta9_key(self) -> bool:
        """Whether the key is a Beta9 API key or machine token (then the server speaks the OpenAI API at /v1)."""
        return bool(self.api_key) and str(self.api_key).startswith((API_KEY_PREFIX, MACHINE_TOKEN_PREFIX))

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def where(self, target: Optional[str] = None) -> str:
        """The server as the error messages name it (``target``: what it turned out to be, if known)."""
        if (target or self.target) == "agent":
            return f"the Beta9 agent's control API at {self.base_url}"
        return f"the Beta9 gateway at {self.base_url}"


def resolve(overrides: Dict[str, Any], base: Dict[str, Any]) -> Settings:
    """Settings from explicit arguments, then ``base`` (configure()'s), then the environment, then defaults."""

    def pick(name: str) -> Any:
        if overrides.get(name) is not None:
            return overrides[name]
        return base.get(name)

    scheme = pick("scheme")
    raw_host = pick("host")
    host_source = "host"
    if raw_host is None:
        raw_host = os.environ.get("BETA9_INFERENCE_HOST") or "localhost"
        host_source = "BETA9_INFERENCE_HOST"
    host, url_scheme, url_port = _parse_host(raw_host, host_source)
    if scheme is None:
        scheme = url_scheme or "http"
    if scheme not in ("http", "https"):
        raise ValidationError(f'scheme must be "http" or "https", not {scheme!r}')

    api_key = pick("api_key")
    if api_key is None:
        api_key = os.environ.get("BETA9_API_KEY") or None
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ValidationError("api_key must be a non-empty string (a b9_… API key or an agent's b9m_… token)")

    target = pick("target")
    if target is None:
        target = "agent" if api_key and api_key.startswith(MACHINE_TOKEN_PREFIX) else "gateway"
    if target not in TARGETS:
        raise ValidationError(f'target must be "gateway" or "agent", not {target!r}')

    port = pick("port")
    port_source = "port"
    if port is None and url_port is not None:
        port = url_port
    if port is None and os.environ.get("BETA9_INFERENCE_PORT"):
        port = os.environ["BETA9_INFERENCE_PORT"]
        port_source = "BETA9_INFERENCE_PORT"
    if port is None:
        port = AGENT_PORT if target == "agent" else GATEWAY_PORT
    port = _parse_port(port, port_source)

    timeout = pick("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, str):
        # The fork's configure(host, port, timeout) takes the timeout third, where a key might be put.
        raise ValidationError(
            f"timeout must be a number of seconds, not the string {timeout!r}; "
            "configure()'s third argument is timeout, so pass a key as api_key="
        )
    timeout = positive_seconds(timeout, "timeout")

    protocol = pick("protocol")
    protocol_source = "protocol"
    if protocol is None and os.environ.get("BETA9_INFERENCE_PROTOCOL"):
        protocol, protocol_source = os.environ["BETA9_INFERENCE_PROTOCOL"], "BETA9_INFERENCE_PROTOCOL"
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValidationError(
            f'{protocol_source} must be "openai", "ollama" or unset (found from the server), not {protocol!r}'
        )

    ca_file = pick("ca_file")
    ca_source = "ca_file"
    if ca_file is None and os.environ.get("BETA9_CA_FILE"):
        ca_file, ca_source = os.environ["BETA9_CA_FILE"], "BETA9_CA_FILE"
    if ca_file is not None and (not isinstance(ca_file, str) or not os.path.isfile(ca_file)):
        raise ValidationError(f"{ca_source} must be the path of a PEM file with the CA's certificate, not {ca_file!r}")
    return Settings(
        host=host,
        port=port,
        api_key=api_key,
        scheme=scheme,
        timeout=timeout,
        target=target,
        ca_file=ca_file,
        protocol=protocol,
    )


def positive_seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"{what} must be a number of seconds above 0, not {value!r}")
    return float(value)


def _parse_host(value: Any, source: str) -> Tuple[str, Optional[str], Optional[int]]:
    """ "gpu-box", "10.0.0.5:1994", "[::1]" or "https://gateway.example:443" → (host, scheme, port)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{source} must be a host name or address such as localhost or 100.72.101.23")
    text = value.strip()
    has_scheme = "://" in text
    parts = urlsplit(text if has_scheme else f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"{source} {value!r} has a port that is not a number") from None
    if not parts.hostname or (parts.path not in ("", "/")) or parts.query:
        raise ValidationError(
            f"{source} must be a host (optionally with :port or http(s)://), not {value!r}; "
            "the SDK adds the API paths itself"
        )
    scheme = parts.scheme.lower() if has_scheme else None
    return parts.hostname, scheme, port


def _parse_port(value: Any, source: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValidationError(
            f"{source} must be a port number between 1 and 65535 "
            f"(the gateway listens on {GATEWAY_PORT}, an agent on {AGENT_PORT}), not {value!r}"
        )
    return value
