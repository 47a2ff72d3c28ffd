"""Where requests go: arguments, then configure(), then the environment, then the defaults."""

from __future__ import annotations

import httpx
import pytest
from recorded import never

from beta9 import Client, ValidationError, inference


def settings_of(**kwargs: object):
    return Client(transport=httpx.MockTransport(never), **kwargs).settings  # type: ignore[arg-type]


def test_defaults_are_the_local_gateway() -> None:
    s = settings_of()
    assert (s.host, s.port, s.scheme, s.api_key, s.target) == ("localhost", 1994, "http", None, "gateway")
    assert s.base_url == "http://localhost:1994"


def test_the_environment_names_host_port_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_INFERENCE_HOST", "100.72.101.23")
    monkeypatch.setenv("BETA9_INFERENCE_PORT", "2000")
    monkeypatch.setenv("BETA9_API_KEY", "b9_fromenv")
    s = settings_of()
    assert (s.host, s.port, s.api_key) == ("100.72.101.23", 2000, "b9_fromenv")


def test_configure_wins_over_the_environment_and_arguments_over_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_INFERENCE_HOST", "from-env")
    inference.configure(host="from-configure", port=3000)
    assert settings_of().host == "from-configure"
    assert settings_of(host="from-argument").host == "from-argument"
    assert inference.settings().port == 3000
    inference.configure()
    assert inference.settings().host == "from-env", "each configure() replaces the one before"


def test_host_may_carry_scheme_and_port() -> None:
    s = settings_of(host="https://gateway.example:8443")
    assert (s.scheme, s.host, s.port) == ("https", "gateway.example", 8443)
    assert settings_of(host="10.0.0.5:1995").port == 1995
    assert settings_of(host="[::1]").base_url == "http://[::1]:1994"


def test_an_agent_token_means_the_agent_and_its_port() -> None:
    s = settings_of(api_key="b9m_machine")
    assert (s.target, s.port) == ("agent", 9999)
    assert settings_of(api_key="b9m_machine", target="gateway").target == "gateway"


def test_the_key_never_shows_in_repr() -> None:
    assert "b9_secret" not in repr(settings_of(api_key="b9_secret"))
    assert "b9_secret" not in repr(Client(api_key="b9_secret", transport=httpx.MockTransport(never)))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"port": 70000}, "port must be a port number between 1 and 65535"),
        ({"port": "abc"}, "port must be a port number"),
        ({"host": ""}, "host must be a host name"),
        ({"host": "http://gw:1994/v1"}, "the SDK adds the API paths itself"),
        ({"scheme": "ftp"}, 'scheme must be "http" or "https"'),
        ({"timeout": 0}, "timeout must be a number of seconds above 0"),
        ({"target": "engine"}, 'target must be "gateway" or "agent"'),
        ({"api_key": "  "}, "api_key must be a non-empty string"),
    ],
)
def test_bad_settings_are_refused_at_configure(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        inference.configure(**kwargs)
    assert message in str(caught.value)


def test_a_bad_port_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA9_INFERENCE_PORT", "gateway")
    with pytest.raises(ValidationError, match="BETA9_INFERENCE_PORT must be a port number"):
        settings_of()
