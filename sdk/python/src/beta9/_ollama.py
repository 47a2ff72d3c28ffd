"""The calls in Ollama's API (/api/…), for servers that speak only that one: Ollama itself, or the
gateway's /api when asked for with protocol="ollama". Pure, like _api: requests out, answers in."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from ._plan import Plan, Request
from ._sampling import Generation, ollama_fields
from .errors import NotFoundError, ValidationError
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

GIB = 1024**3


def generation(kind: str, model: str, given: Any, g: Generation, where: str) -> Request:
    body: Dict[str, Any] = {"model": model, ("messages" if kind == "chat" else "prompt"): given}
    body.update(ollama_fields(g, where))
    # Ollama streams unless told not to.
    body["stream"] = g.stream
    return Request("POST", f"/api/{kind}", body)


def embed(model: str, given: Any, options: Dict[str, Any]) -> Request:
    return Request("POST", "/api/embed", {"model": model, "input": given, **options})


def _usage(body: Dict[str, Any]) -> Usage:
    return Usage.of(_int(body.get("prompt_eval_count")), _int(body.get("eval_count")))


def parse_chat(body: Dict[str, Any]) -> ChatResult:
    message = _dict(body.get("message"))
    return ChatResult(**_common(body, message.get("content")), message=message, raw=body)


def parse_generate(body: Dict[str, Any]) -> GenerateResult:
    return GenerateResult(**_common(body, body.get("response")), raw=body)


def _common(body: Dict[str, Any], text: Any) -> Dict[str, Any]:
    return {
        "content": text if isinstance(text, str) else "",
        "model": str(body.get("model", "")),
        "finish_reason": body.get("done_reason"),
        "usage": _usage(body),
    }


def parse_chat_chunk(event: Dict[str, Any]) -> ChatChunk:
    message = _dict(event.get("message"))
    done = event.get("done") is True
    return ChatChunk(
        **_chunk(event, message.get("content"), done), role=message.get("role") if not done else None, raw=event
    )


def parse_generate_chunk(event: Dict[str, Any]) -> GenerateChunk:
    return GenerateChunk(**_chunk(event, event.get("response"), event.get("done") is True), raw=event)


def _chunk(event: Dict[str, Any], text: Any, done: bool) -> Dict[str, Any]:
    """A line of an Ollama stream; the last (``done``) carries the reason and the token counts."""
    return {
        "content": text if isinstance(text, str) else "",
        "model": str(event.get("model", "")),
        "finish_reason": event.get("done_reason") if done else None,
        "usage": _usage(event) if done else None,
    }


def parse_embed(body: Dict[str, Any], model: str) -> EmbedResult:
    vectors = body.get("embeddings")
    if not isinstance(vectors, list) or not vectors:
        # Ollama before /api/embed answered one vector as "embedding".
        single = body.get("embedding")
        vectors = [single] if isinstance(single, list) else []
    return EmbedResult(
        embeddings=[list(v) for v in vectors if isinstance(v, list)],
        model=str(body.get("model") or model),
        usage=Usage.of(_int(body.get("prompt_eval_count")), 0),
        raw=body,
    )


def list_models() -> Plan[List[Model]]:
    """/api/tags lists what the server has; /api/ps what is loaded now ("ready"; the rest "idle")."""
    tags = _dict((yield Request("GET", "/api/tags")))
    try:
        ps = _list(_dict((yield Request("GET", "/api/ps"))).get("models"))
        loaded: Optional[Set[str]] = {str(m.get("name")) for m in ps if isinstance(m, dict)}
    except NotFoundError:
        loaded = None  # a server without /api/ps: what it lists can answer
    out: List[Model] = []
    for m in _list(tags.get("models")):
        if not isinstance(m, dict) or not m.get("name"):
            continue
        name = str(m["name"])
        size = m.get("size")
        out.append(
            Model(
                id=name,
                load_state="ready" if loaded is None or name in loaded else "idle",
                size_gb=round(size / GIB, 2) if isinstance(size, (int, float)) else 0.0,
                last_used=m.get("modified_at"),
                raw=m,
            )
        )
    return out


def health() -> Plan[Health]:
    body = _dict((yield Request("GET", "/api/version")))
    return Health(status="ok", version=body.get("version"), raw=body)


def load_model(name: str, keep_alive: Any, refused: Dict[str, Any]) -> Plan[ModelStatus]:
    """Ollama loads a model on an empty prompt and keeps it for ``keep_alive`` (its default: 5 minutes)."""
    given = sorted(k for k, v in refused.items() if v is not None and v != {})
    if given:
        raise ValidationError(
            f"{', '.join(given)}: an Ollama server loads models by name only; pull the model there (ollama pull)"
        )
    body: Dict[str, Any] = {"model": name, "prompt": "", "stream": False}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    answer = _dict((yield Request("POST", "/api/generate", body)))
    return ModelStatus(name=name, state="ready", raw=answer)


def unload_model(name: str) -> Plan[None]:
    yield Request("POST", "/api/generate", {"model": name, "prompt": "", "stream": False, "keep_alive": 0})
    return None


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
