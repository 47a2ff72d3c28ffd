"""The calls, without I/O: what to send and how to read the answer, shared by Client and AsyncClient.

Beta9's gateway and agents speak the OpenAI API (/v1); a server that speaks only Ollama's (/api) is
called through _ollama. ``detect`` finds which one a server speaks when the key does not say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, Union
from urllib.parse import quote

from . import _ollama
from . import _validate as check
from ._plan import Pause, Plan, Request
from ._sampling import Generation, generation, openai_fields
from .errors import APIError, APITimeoutError, ConflictError, NotFoundError, StreamError, ValidationError
from .types import (
    ChatChunk,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateResult,
    Health,
    Model,
    ModelStatus,
    Usage,
)

E = TypeVar("E", bound=APIError)

DEFAULT_LOAD_TIMEOUT = 600.0
POLL_SECONDS = 0.5
# What the gateway takes for a deployment besides name, source, sha256, engine and context_size.
DEPLOYMENT_OPTIONS = (
    "min_replicas",
    "max_replicas",
    "idle_seconds",
    "pool",
    "gpu",
    "min_vram_bytes",
    "countries",
    "region",
)


# --- which API a server speaks ---


@dataclass(frozen=True)
class Detected:
    #: "openai" or "ollama".
    protocol: str
    #: "gateway" or "agent": what a Beta9 server turned out to be (its errors name it), else None.
    target: Optional[str]


def detect() -> Plan[Detected]:
    """Beta9's gateway and agents answer /health; the gateway also answers Ollama's /api/version without a
    key, an agent does not. A server with no /health but /api/version is Ollama; anything else is taken
    to speak the OpenAI API."""
    health = yield from _answers(Request("GET", "/health"))
    version = yield from _answers(Request("GET", "/api/version"))
    if health:
        return Detected("openai", "gateway" if version else "agent")
    return Detected("ollama" if version else "openai", None)


def _answers(request: Request) -> Plan[bool]:
    """Whether the server answers ``request`` with JSON (any failure but a broken connection: no)."""
    try:
        return isinstance((yield request), dict)
    except APIError:
        return False


# --- inference: chat, generate and embed, in the API the server speaks ---


@dataclass(frozen=True)
class GenerationCall:
    """A checked chat or completion request, to be spelled in the server's API."""

    kind: str  # "chat" or "generate"
    model: str
    given: Any  # the messages, or the prompt
    generation: Generation

    @property
    def stream(self) -> bool:
        return self.generation.stream

    def request(self, protocol: str, where: str) -> Request:
        if protocol == "ollama":
            return _ollama.generation(self.kind, self.model, self.given, self.generation, where)
        body: Dict[str, Any] = {
            "model": self.model,
            ("messages" if self.kind == "chat" else "prompt"): self.given,
            **openai_fields(self.generation, where),
        }
        if self.stream:
            body["stream"] = True
            # The final chunk then carries the token counts.
            body.setdefault("stream_options", {"include_usage": True})
        return Request("POST", "/v1/chat/completions" if self.kind == "chat" else "/v1/completions", body)

    def parser(self, protocol: str) -> Callable[[Dict[str, Any]], Any]:
        """How to read the answer, or with stream=True each event."""
        ollama = protocol == "ollama"
        if self.kind == "chat":
            if self.stream:
                return _ollama.parse_chat_chunk if ollama else parse_chat_chunk
            return _ollama.parse_chat if ollama else parse_chat
        if self.stream:
            return _ollama.parse_generate_chunk if ollama else parse_generate_chunk
        return _ollama.parse_generate if ollama else parse_generate


def chat(model: Any, messages: Any, options: Any, stream: Any, keywords: Mapping[str, Any]) -> GenerationCall:
    return GenerationCall("chat", check.model(model), check.messages(messages), generation(options, keywords, stream))


def generate(model: Any, prompt: Any, options: Any, stream: Any, keywords: Mapping[str, Any]) -> GenerationCall:
    return GenerationCall("generate", check.model(model), check.prompt(prompt), generation(options, keywords, stream))


@dataclass(frozen=True)
class EmbedCall:
    model: str
    given: Union[str, List[str]]
    options: Dict[str, Any]

    def request(self, protocol: str) -> Request:
        if protocol == "ollama":
            return _ollama.embed(self.model, self.given, self.options)
        return Request("POST", "/v1/embeddings", {"model": self.model, "input": self.given, **self.options})

    def parse(self, protocol: str, body: Any) -> EmbedResult:
        return _ollama.parse_embed(_dict(body), self.model) if protocol == "ollama" else parse_embed(_dict(body))


def embed(model: Any, input: Any, options: Mapping[str, Any]) -> EmbedCall:
    return EmbedCall(check.model(model), check.embed_input(input), check.options(options))


def parse_chat(body: Dict[str, Any]) -> ChatResult:
    choice = _first_choice(body)
    message = _dict(choice.get("message"))
    return ChatResult(**_completion(body, choice, message.get("content")), message=message, id=body.get("id"), raw=body)


def parse_chat_chunk(event: Dict[str, Any]) -> ChatChunk:
    choice = _first_choice(event)
    delta = _dict(choice.get("delta"))
    return ChatChunk(**_completion(event, choice, delta.get("content")), role=delta.get("role"), raw=event)


def parse_generate(body: Dict[str, Any]) -> GenerateResult:
    choice = _first_choice(body)
    return GenerateResult(**_completion(body, choice, choice.get("text")), id=body.get("id"), raw=body)


def parse_generate_chunk(event: Dict[str, Any]) -> GenerateChunk:
    choice = _first_choice(event)
    return GenerateChunk(**_completion(event, choice, choice.get("text")), raw=event)


def _completion(body: Dict[str, Any], choice: Dict[str, Any], text: Any) -> Dict[str, Any]:
    """What every completion and chunk has: its text ("" when absent), model, finish reason, token counts."""
    return {
        "content": text if isinstance(text, str) else "",
        "model": str(body.get("model", "")),
        "finish_reason": choice.get("finish_reason"),
        "usage": Usage.parse(body.get("usage")),
    }


def parse_embed(body: Dict[str, Any]) -> EmbedResult:
    ordered = sorted((d for d in _list(body.get("data")) if isinstance(d, dict)), key=lambda d: d.get("index", 0))
    return EmbedResult(
        embeddings=[list(d.get("embedding") or []) for d in ordered],
        model=str(body.get("model", "")),
        usage=Usage.parse(body.get("usage")),
        raw=body,
    )


def stream_error(event: Dict[str, Any]) -> StreamError:
    err = event.get("error")
    err = err if isinstance(err, dict) else {"message": str(err)}
    return StreamError(
        str(err.get("message") or "the stream ended with an error"),
        code=str(err.get("code") or err.get("type") or "stream_error"),
        status=None,
        type=err.get("type"),
        body=event,
    )


def list_models(protocol: str, target: str) -> Plan[List[Model]]:
    if protocol == "ollama":
        return (yield from _ollama.list_models())
    body = _dict((yield Request("GET", "/v1/models")))
    loaded = (yield from _loaded_on_gateway()) if target == "gateway" else None
    return [
        Model(
            id=str(m["id"]),
            owned_by=m.get("owned_by"),
            load_state="ready" if loaded is None or str(m["id"]) in loaded else "idle",
            raw=m,
        )
        for m in _list(body.get("data"))
        if isinstance(m, dict) and "id" in m
    ]


def _loaded_on_gateway() -> Plan[Optional[List[str]]]:
    """The gateway lists deployments scaled to zero too; its /api/ps says which have a machine now
    (None where the server has no such list, or the key may not read it)."""
    try:
        ps = _dict((yield Request("GET", "/api/ps")))
    except APIError:
        return None
    return [str(m.get("name")) for m in _list(ps.get("models")) if isinstance(m, dict)]


def health(protocol: str) -> Plan[Health]:
    if protocol == "ollama":
        return (yield from _ollama.health())
    body = _dict((yield Request("GET", "/health")))
    return Health(status=str(body.get("status", "unknown")), version=body.get("version"), raw=body)


# --- the model lifecycle: an agent's control API, the gateway's deployments, or Ollama's keep_alive ---


def load_model(
    target: str,
    protocol: str,
    model: Any,
    source: Any,
    keep_alive: Any,
    sha256: Any,
    engine: Any,
    context_size: Any,
    timeout: Any,
    deployment: Mapping[str, Any],
) -> Plan[ModelStatus]:
    name = check.model(model)
    if isinstance(source, int) and not isinstance(source, bool):
        # The fork's load_model(model, keep_alive) took keep_alive second.
        if keep_alive is not None:
            raise ValidationError("keep_alive is given twice: as the second argument and as keep_alive=")
        source, keep_alive = None, source
    check.load_options(source, sha256, engine, context_size)
    wait = _timeout(timeout, DEFAULT_LOAD_TIMEOUT)
    if sha256 is not None and source is None:
        raise ValidationError("sha256 checks what is pulled; pass it together with source=")
    if protocol == "ollama":
        refused = {"source": source, "engine": engine, "context_size": context_size, "deployment options": deployment}
        return (yield from _ollama.load_model(name, check.keep_alive(keep_alive, ollama=True), refused))
    keep_alive = check.keep_alive(keep_alive, ollama=False)
    if keep_alive == 0:
        # The fork's way to unload: keep it for no time; it is gone when this returns.
        yield from unload_model(target, protocol, name, True, timeout)
        return ModelStatus(name=name, state="unloaded")
    if target == "agent":
        if deployment:
            raise ValidationError(
                f"{', '.join(sorted(deployment))}: only the gateway takes these (they describe a deployment); "
                "an agent serves the model on its own machine"
            )
        if keep_alive is not None and keep_alive > 0:
            raise ValidationError(
                f"keep_alive={keep_alive}: an agent serves a model until it is stopped; "
                "pass -1 (until unload_model) or 0 (unload now)"
            )
        return (yield from _load_on_agent(name, source, sha256, engine, context_size, wait))
    unknown = sorted(set(deployment) - set(DEPLOYMENT_OPTIONS))
    if unknown:
        raise ValidationError(
            f"load_model() got unknown option(s) {', '.join(unknown)}; "
            f"the gateway takes {', '.join(DEPLOYMENT_OPTIONS)}"
        )
    spec = dict(deployment)
    if keep_alive is not None:
        if source is None:
            raise ValidationError(
                f"keep_alive={keep_alive}: on the gateway, how long a model stays loaded is its deployment's "
                "idle_seconds (min_replicas=1: always); pass keep_alive with source= when deploying it"
            )
        # -1, "forever": one replica always; N seconds: unloaded after N idle seconds.
        spec.setdefault(*(("min_replicas", 1) if keep_alive < 0 else ("idle_seconds", keep_alive)))
    return (yield from _load_on_gateway(name, source, sha256, engine, context_size, wait, spec))


def _load_on_agent(
    name: str, source: Any, sha256: Any, engine: Any, context_size: Any, wait: float
) -> Plan[ModelStatus]:
    if source is not None:
        pull: Dict[str, Any] = {"model": name, "source": source}
        if sha256 is not None:
            pull["sha256"] = sha256
        yield Request("POST", "/inference/pull", pull, timeout=wait)
    start: Dict[str, Any] = {"model": name}
    if engine is not None:
        start["engine"] = engine
    if context_size is not None:
        start["context_size"] = context_size
    status = _dict((yield Request("POST", "/inference/start", start, timeout=wait)))
    for m in _list(status.get("models")):
        if isinstance(m, dict) and m.get("name") == name:
            return ModelStatus(
                name=name,
                state=str(m.get("state", "unknown")),
                engine=m.get("engine"),
                memory_bytes=m.get("memory_bytes"),
                context_size=m.get("context_size"),
                error=m.get("error"),
                raw=m,
            )
    return ModelStatus(name=name, state=str(status.get("status", "unknown")), raw=status)


def _load_on_gateway(
    name: str,
    source: Any,
    sha256: Any,
    engine: Any,
    context_size: Any,
    wait: float,
    deployment: Dict[str, Any],
) -> Plan[ModelStatus]:
    if source is not None:
        body: Dict[str, Any] = {"name": name, "source": source, **deployment}
        for key, value in (("sha256", sha256), ("engine", engine), ("context_size", context_size)):
            if value is not None:
                body[key] = value
        try:
            yield Request("POST", "/api/v1/deployments", body)
        except ConflictError as err:
            existing = _dict((yield Request("GET", f"/api/v1/deployments/{quote(name, safe='')}")))
            deployed = existing.get("source")
            if deployed != source:
                raise _reworded(
                    err,
                    f"a deployment named {name} exists with another source ({deployed}); "
                    f"call unload_model({name!r}) first, or load_model({name!r}) without source",
                ) from None
    elif deployment or engine is not None or context_size is not None:
        raise ValidationError(
            "engine, context_size and deployment options describe a new deployment; pass source= with them"
        )
    else:
        served = yield from list_models("openai", "gateway")
        if any(m.id == name and m.load_state == "ready" for m in served):
            return ModelStatus(name=name, state="ready")
    # The gateway places a deployed model on a machine when the first request for it comes (scale from
    # zero) and answers once it is loaded; a one-token completion is that first request.
    try:
        yield Request("POST", "/v1/completions", {"model": name, "prompt": "Hi", "max_tokens": 1}, timeout=wait)
    except NotFoundError as err:
        raise _reworded(
            err,
            f"{err.message}. To have the gateway deploy it, call load_model({name!r}, source=...) with an "
            "admin key (source: an http(s) URL, hf:ORG/REPO/FILE.gguf, ollama:NAME:TAG or a path the machines allow)",
        ) from None
    return ModelStatus(name=name, state="ready")


def unload_model(target: str, protocol: str, model: Any, wait: Any, timeout: Any) -> Plan[None]:
    name = check.model(model)
    if not isinstance(wait, bool):
        raise ValidationError(f"wait must be True or False, not {wait!r}")
    seconds = _timeout(timeout, 60.0)
    if protocol == "ollama":
        return (yield from _ollama.unload_model(name))
    if target == "agent":
        yield Request("POST", "/inference/stop", {"model": name}, timeout=seconds)
        return None
    try:
        yield Request("DELETE", f"/api/v1/deployments/{quote(name, safe='')}")
    except NotFoundError as err:
        raise _reworded(
            err,
            f"{err.message}. On the gateway, unload_model removes a deployment; a model started on an agent "
            "directly is stopped on that agent (Client(target='agent', ...).unload_model, or POST /inference/stop)",
        ) from None
    if not wait:
        return None
    deadline = time.monotonic() + seconds
    while True:
        served = yield from list_models("openai", "agent")
        if all(m.id != name for m in served):
            return None
        if time.monotonic() > deadline:
            raise APITimeoutError(
                f"{name} is still served {seconds:g} s after its deployment was removed; a machine may serve it "
                "outside the deployment (stop it on that agent)"
            )
        yield Pause(POLL_SECONDS)


def _reworded(err: E, message: str) -> E:
    """The server's error (its class, code, status and body) with a message that says what to do."""
    return type(err)(message, code=err.code, status=err.status, body=err.body)


def _first_choice(body: Dict[str, Any]) -> Dict[str, Any]:
    choices = _list(body.get("choices"))
    return _dict(choices[0]) if choices else {}


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _timeout(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"timeout must be a number of seconds above 0, not {value!r}")
    return float(value)
