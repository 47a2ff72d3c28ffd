"""The official `openai` Python package, unmodified, against the gateway's OpenAI API.

python openai_client.py <gateway-url> [api-key]   (or the key in BETA9_API_KEY)
Prints one JSON line of results; exits 1 if any check failed (see checks.py).
"""

import asyncio

import openai
from openai import AsyncOpenAI, OpenAI

from checks import Checks, CheckFailed, require, target

url, key, model = target()
client = OpenAI(base_url=f"{url}/v1", api_key=key)
checks = Checks("openai", openai.__version__)
capital = [{"role": "user", "content": "What is the capital of France?"}]


def list_models():
    ids = [m.id for m in client.models.list()]
    require(model in ids, f"{model!r} not among the listed models {ids}")
    return ids


def chat():
    res = client.chat.completions.create(model=model, messages=capital, max_tokens=16, temperature=0)
    text = res.choices[0].message.content or ""
    require("Paris" in text, f"the answer does not mention Paris: {text!r}")
    return {"content": text, "finish_reason": res.choices[0].finish_reason, "model": res.model}


def chat_stream():
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=20,
        stream=True,
    )
    chunks, text = 0, ""
    for chunk in stream:
        chunks += 1
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    require(chunks > 3, f"only {chunks} chunks streamed")
    require(len(text) > 0, "the streamed chunks carried no text")
    return {"chunks": chunks, "content": text}


def embeddings():
    res = client.embeddings.create(model=model, input="hello")
    dims = len(res.data[0].embedding)
    require(dims == 576, f"the embedding has {dims} dimensions, not 576")
    return {"dims": dims}


def error(err: openai.APIStatusError):
    return {"type": type(err).__name__, "status": err.status_code, "code": err.code, "message": err.message}


def unknown_model():
    try:
        client.chat.completions.create(model="nope", messages=capital)
    except openai.NotFoundError as err:
        require(err.status_code == 404, f"NotFoundError with status {err.status_code}")
        return error(err)
    raise CheckFailed("an unknown model was answered; expected openai.NotFoundError")


def wrong_key():
    with OpenAI(base_url=f"{url}/v1", api_key="b9_not-a-key") as stranger:
        try:
            stranger.models.list()
        except openai.AuthenticationError as err:
            require(err.status_code == 401, f"AuthenticationError with status {err.status_code}")
            return error(err)
    raise CheckFailed("a wrong API key was accepted; expected openai.AuthenticationError")


async def async_variant():
    async with AsyncOpenAI(base_url=f"{url}/v1", api_key=key) as aclient:
        res = await aclient.chat.completions.create(
            model=model, messages=capital, max_tokens=16, temperature=0
        )
        text = res.choices[0].message.content or ""
        require("Paris" in text, f"the async answer does not mention Paris: {text!r}")
        chunks = 0
        stream = await aclient.chat.completions.create(
            model=model, messages=capital, max_tokens=16, temperature=0, stream=True
        )
        async for _ in stream:
            chunks += 1
        require(chunks > 3, f"only {chunks} chunks streamed to the async client")
        return {"content": text, "chunks": chunks}


checks.run("models", list_models)
checks.run("chat", chat)
checks.run("stream", chat_stream)
checks.run("embeddings", embeddings)
checks.run("unknown_model", unknown_model)
checks.run("wrong_key", wrong_key)
checks.run("async", lambda: asyncio.run(async_variant()))
client.close()
checks.finish()
