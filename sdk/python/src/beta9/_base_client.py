"""What Client and AsyncClient share: settings, headers, reading answers and naming failures."""

from __future__ import annotations

import json
import ssl
from typing import Any, Dict, Optional, Union

import httpx

from . import _settings
from ._api import Detected
from ._plan import Request
from ._version import __version__
from .errors import APIConnectionError, APIError, APITimeoutError, AuthenticationError, error_from_response

OLLAMA_PORT = 11434


class BaseClient:
    def __init__(self, headers: Optional[Dict[str, str]], **settings: Any) -> None:
        self.settings = _settings.resolve(_settings.given(**settings), _settings.configured)
        # The API the server speaks, once asked (see _api.detect); the same for the client's life.
        self._detected: Optional[Detected] = None
        self._headers = {"user-agent": f"beta9-python/{__version__}", "accept": "application/json"}
        if self.settings.api_key:
            self._headers["authorization"] = f"Bearer {self.settings.api_key}"
        self._headers.update(headers or {})

    def _verify(self) -> Union[bool, ssl.SSLContext]:
        """httpx's verify=: the system's CAs, plus ca_file's when one is set."""
        if not self.settings.ca_file:
            return True
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def __repr__(self) -> str:
        s = self.settings
        return f"{type(self).__name__}({s.base_url!r}, target={s.target!r})"

    @property
    def base_url(self) -> str:
        """Where requests go, e.g. http://localhost:1994 (the fork's InferenceClient had it too)."""
        return self.settings.base_url

    def _known(self) -> Optional[Detected]:
        """The server's API when it is known without asking: set, or implied by a Beta9 key."""
        s = self.settings
        if s.beta9_key:
            return Detected(s.protocol or "openai", s.target)
        if s.protocol is not None:
            # Without a Beta9 key, a server named only by its Ollama API may be Ollama itself.
            return Detected(s.protocol, s.target if s.protocol == "openai" else None)
        return self._detected

    def _target(self) -> str:
        """"gateway" or "agent": what the server turned out to be, else what the settings say."""
        known = self._known()
        return (known and known.target) or self.settings.target

    def _where(self) -> str:
        known = self._known()
        if known and known.target is None:
            return f"the server at {self.settings.base_url}"  # not Beta9 (Ollama, or another OpenAI API)
        return self.settings.where(self._target())

    def _timeout(self, request: Request) -> httpx.Timeout:
        seconds = request.timeout or self.settings.timeout
        return httpx.Timeout(seconds, connect=min(10.0, seconds))

    def _build(
        self,
        http: Union[httpx.Client, httpx.AsyncClient],
        request: Request,
        *,
        stream: bool = False,
        ndjson: bool = False,
    ) -> httpx.Request:
        headers = {"accept": "application/x-ndjson" if ndjson else "text/event-stream"} if stream else None
        return http.build_request(
            request.method,
            request.path,
            json=request.json,
            headers=headers,
            timeout=self._timeout(request),
        )

    def _read(self, response: httpx.Response, request: Request) -> Any:
        """The answer's JSON, or the server's error raised as an exception."""
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._not_json(response, request) from None

    def _error(self, response: httpx.Response) -> APIError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        err = error_from_response(response.status_code, body, response.headers)
        if response.status_code == 401 and not self.settings.api_key:
            return AuthenticationError(self._missing_key(), code=err.code, status=err.status, body=body)
        return err

    def _missing_key(self) -> str:
        """What to do when a server that wants a key was sent none: where keys come from, and where they go."""
        give = "pass api_key= to inference.configure() (or Client()) or set BETA9_API_KEY"
        if self._target() == "agent":
            return (
                f"{self._where()} needs the agent's machine token: {give} to machine.token from the agent's "
                "config file (~/.b9agent/config.yaml, or the file B9AGENT_CONFIG names)"
            )
        return (
            f"{self._where()} needs an API key: {give} to a b9_… key, which an admin creates with "
            "`b9 key create NAME --scopes inference`"
        )

    def _not_json(self, response: httpx.Response, request: Request) -> APIError:
        return APIError(
            f"{self._where()} answered {request.method} {request.path} with something that is not JSON "
            f"({response.headers.get('content-type', 'no content type')}); check that "
            f"{self.settings.host}:{self.settings.port} is a Beta9 gateway or agent",
            code="unexpected_response",
            status=response.status_code,
        )

    def _connection_error(self, err: httpx.HTTPError) -> APIConnectionError:
        s = self.settings
        if self._target() == "agent":
            running = "that the agent is running (b9agent) and its control API listens there"
        else:
            running = "that the gateway is running (b9gateway)"
        place = (
            f"host and port are right (now {s.host}:{s.port}; set them with inference.configure(host=, port=) "
            "or BETA9_INFERENCE_HOST and BETA9_INFERENCE_PORT)"
        )
        if s.port == OLLAMA_PORT:
            # The fork's README pointed the SDK at a worker's Ollama; Beta9 keeps engines on loopback.
            place += (
                f"; {OLLAMA_PORT} is Ollama's port, which Beta9 machines do not open: call the gateway "
                "(port 1994, an API key) or the agent (port 9999, its machine token) instead"
            )
        if isinstance(err, httpx.TimeoutException):
            if isinstance(err, httpx.ConnectTimeout):
                return APITimeoutError(f"connecting to {self._where()} timed out. Check {running}, and that {place}")
            return APITimeoutError(
                f"{self._where()} did not answer within {s.timeout:g} s; raise timeout= (configure() or Client()) "
                "for slow models or cold starts"
            )
        reason = _reason(err)
        if isinstance(err, httpx.ConnectError) and _untrusted_certificate(err):
            return APIConnectionError(
                f"the certificate of {self._where()} is not trusted ({reason}): pass the CA that signed it with "
                "ca_file= (inference.configure() or Client()) or BETA9_CA_FILE",
                code="certificate_untrusted",
            )
        if isinstance(err, httpx.ConnectError):
            return APIConnectionError(
                f"could not connect to {self._where()} ({reason}). Check {running}, and that {place}"
            )
        return APIConnectionError(
            f"the connection to {self._where()} broke ({reason}); try again", code="connection_lost"
        )


def parse_event(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise APIError(
            f"a streamed event is not JSON: {data[:200]!r}", code="unexpected_response", status=None
        ) from None


def _untrusted_certificate(err: BaseException) -> bool:
    """Whether the TLS handshake failed because the server's certificate could not be verified."""
    for _ in range(8):
        if isinstance(err, ssl.SSLCertVerificationError):
            return True
        inner = err.__cause__ or err.__context__
        if inner is None:
            return "CERTIFICATE_VERIFY_FAILED" in str(err)
        err = inner
    return False


def _reason(err: BaseException) -> str:
    # httpx wraps the socket error; its innermost cause says it plainly ("Connection refused").
    for _ in range(8):
        inner = err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    text = str(err) or type(err).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text
