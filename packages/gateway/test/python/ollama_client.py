"""The official `ollama` Python package, unmodified, against the gateway's Ollama API.

python ollama_client.py <gateway-url> [api-key]   (or the key in BETA9_API_KEY)
Prints one JSON line of results; exits 1 if any check failed (see checks.py).
"""

import asyncio
from importlib.metadata import version

import ollama

from checks import Checks, CheckFailed, require, target

url, key, model = target()
client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"})
checks = Checks("ollama", version("ollama"))
capital = [{"role": "user", "content": "What is the capital of France?"}]


def list_models():
    names = [m.model for m in client.list().models]
    require(model in names, f"{model!r} not among the listed models {names}")
    return names


def chat():
    res = client.chat(model=model, messages=capital, options={"num_predict": 16, "temperature": 0})
    text = res.message.content or ""
    require("Paris" in text, f"the answer does not mention Paris: {text!r}")
    require(res.done is True, f"done is {res.done!r}")
    return {"content": text, "done_reason": res.done_reason, "model": res.model, "eval_count": res.eval_count}


def chat_stream():
    parts = list(
        client.chat(
            model=model,
            messages=[{"role": "user", "content": "Count from 1 to 100, one number per line."}],
            options={"num_predict": 12, "temperature": 0},
            stream=True,
        )
    )
    text = "".join(p.message.content or "" for p in parts)
    require(len(parts) > 3, f"only {len(parts)} parts streamed")
    require(all(not p.done for p in parts[:-1]), "a part before the last one says done")
    require(parts[-1].done is True, "the last part does not say done")
    require(len(text) > 0, "the streamed parts carried no text")
    return {"chunks": len(parts), "content": text, "done_reason": parts[-1].done_reason}


def embeddings():
    res = client.embed(model=model, input="hello")
    require(len(res.embeddings) == 1, f"{len(res.embeddings)} embeddings for one input")
    dims = len(res.embeddings[0])
    require(dims == 576, f"the embedding has {dims} dimensions, not 576")
    return {"dims": dims}


def error(err: ollama.ResponseError):
    return {"type": type(err).__name__, "status": err.status_code, "message": err.error}


def unknown_model():
    try:
        client.chat(model="nope", messages=capital)
    except ollama.ResponseError as err:
        require(err.status_code == 404, f"ResponseError with status {err.status_code}: {err.error}")
        return error(err)
    raise CheckFailed("an unknown model was answered; expected ollama.ResponseError 404")


def wrong_key():
    with ollama.Client(host=url, headers={"Authorization": "Bearer b9_not-a-key"}) as stranger:
        try:
            stranger.list()
        except ollama.ResponseError as err:
            require(err.status_code == 401, f"ResponseError with status {err.status_code}: {err.error}")
            return error(err)
    raise CheckFailed("a wrong API key was accepted; expected ollama.ResponseError 401")


async def async_variant():
    async with ollama.AsyncClient(host=url, headers={"Authorization": f"Bearer {key}"}) as aclient:
        res = await aclient.chat(model=model, messages=capital, options={"num_predict": 16, "temperature": 0})
        text = res.message.content or ""
        require("Paris" in text, f"the async answer does not mention Paris: {text!r}")
        chunks = 0
        async for _ in await aclient.chat(
            model=model, messages=capital, options={"num_predict": 16, "temperature": 0}, stream=True
        ):
            chunks += 1
        require(chunks > 3, f"only {chunks} parts streamed to the async client")
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
