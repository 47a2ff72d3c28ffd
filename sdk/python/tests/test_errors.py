"""Server errors become exceptions carrying the server's code and message (recorded answers)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from beta9 import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

HELLO = [{"role": "user", "content": "Hello!"}]


def answering(status: int, **kwargs: object) -> Client:
    return Client(
        host="gateway.test",
        api_key="b9_test",
        transport=httpx.MockTransport(lambda r: httpx.Response(status, **kwargs)),  # type: ignore[arg-type]
    )


def test_openai_shape() -> None:
    body = {
        "error": {
            "message": "The model `nope` does not exist",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    with pytest.raises(NotFoundError) as caught:
        answering(404, json=body).chat("nope", HELLO)
    err = caught.value
    assert (err.status, err.code, err.type) == (404, "model_not_found", "invalid_request_error")
    assert err.message == "The model `nope` does not exist"
    assert str(err) == "The model `nope` does not exist (404 model_not_found)"


def test_beta9_shape() -> None:
    body = {"error": {"code": "scope_missing", "message": "this API key lacks the 'admin' scope"}}
    with pytest.raises(PermissionDeniedError) as caught:
        answering(403, json=body).load_model("m", "hf:a/b/c.gguf")
    assert (caught.value.code, caught.value.status) == ("scope_missing", 403)


def test_ollama_shape_and_plain_text() -> None:
    with pytest.raises(AuthenticationError) as caught:
        answering(401, json={"error": "unauthorized"}).list_models()
    assert (caught.value.code, caught.value.message) == ("unauthorized", "unauthorized")
    with pytest.raises(ServerError) as bad_gateway:
        answering(502, text="upstream went away").health()
    assert (bad_gateway.value.code, bad_gateway.value.message) == ("internal", "upstream went away")


def test_rate_limit_and_unavailable_carry_retry_after() -> None:
    body = {"error": {"message": "over 60 requests a minute", "type": "rate_limit_error", "code": "rate_limited"}}
    with pytest.raises(RateLimitError) as caught:
        answering(429, json=body, headers={"retry-after": "3"}).chat("m", HELLO)
    assert caught.value.retry_after == 3.0
    with pytest.raises(ServerError) as unavailable:
        answering(
            503, json={"error": {"code": "unavailable", "message": "no machine fits"}}, headers={"retry-after": "10"}
        ).chat("m", HELLO)
    assert (unavailable.value.code, unavailable.value.retry_after) == ("unavailable", 10.0)


def test_an_answer_that_is_not_json_says_what_to_check() -> None:
    with pytest.raises(APIError) as caught:
        answering(200, text="<html>hello</html>", headers={"content-type": "text/html"}).list_models()
    assert caught.value.code == "unexpected_response"
    assert "gateway.test:1994 is a Beta9 gateway or agent" in caught.value.message


def failing(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


def test_connection_refused_says_what_to_check() -> None:
    client = Client(host="gpu-box", port=1995, transport=failing(httpx.ConnectError("[Errno 111] Connection refused")))
    with pytest.raises(APIConnectionError) as caught:
        client.health()
    message = caught.value.message
    assert "could not connect to the Beta9 gateway at http://gpu-box:1995 (Connection refused)" in message
    assert "b9gateway" in message and "BETA9_INFERENCE_HOST" in message and "gpu-box:1995" in message
    assert caught.value.code == "connection_failed"


def test_an_agent_that_cannot_be_reached_is_named_as_the_agent() -> None:
    client = Client(host="mac", api_key="b9m_t", transport=failing(httpx.ConnectError("refused")))
    with pytest.raises(APIConnectionError, match="the Beta9 agent's control API at http://mac:9999.*b9agent"):
        client.list_models()


def test_a_timeout_says_how_to_wait_longer() -> None:
    client = Client(host="gw", timeout=2, transport=failing(httpx.ReadTimeout("timed out")))
    with pytest.raises(APITimeoutError, match="did not answer within 2 s; raise timeout="):
        client.chat("m", HELLO)


def test_async_client_maps_errors_the_same_way() -> None:
    async def run() -> None:
        transport = httpx.MockTransport(
            lambda r: httpx.Response(404, json={"error": {"code": "model_not_found", "message": "no"}})
        )
        async with AsyncClient(host="gw", transport=transport) as client:
            with pytest.raises(NotFoundError):
                await client.chat("m", HELLO)
        async with AsyncClient(host="gw", transport=failing(httpx.ConnectError("refused"))) as client:
            with pytest.raises(APIConnectionError, match="could not connect"):
                await client.health()

    asyncio.run(run())
