"""Argument checks made before anything is sent, with messages that say what a good value looks like."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from .errors import ValidationError
from .types import ChatMessage

ROLES = ("system", "user", "assistant", "tool", "developer")
ENGINES = ("builtin", "ollama", "llamacpp", "vllm", "sglang", "mlx")
# The server's rule for model names (Ollama-style: "llama3.2:1b", "library/qwen2.5:7b").
_MODEL_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]*$")
_RESERVED = ("model", "messages", "prompt", "input")


def model(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            f'model must name a model, e.g. "smollm2", not {name!r}; list_models() shows what is served'
        )
    if len(name) > 128 or not _MODEL_NAME.match(name):
        raise ValidationError(
            f"model {name!r} is not a valid model name: letters, digits and . _ : / @ + - only, "
            "starting with a letter or digit, at most 128 characters"
        )
    return name


def messages(value: Any) -> List[Dict[str, Any]]:
    example = '[{"role": "user", "content": "Hello!"}]'
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValidationError(f"messages must be a list of messages such as {example}, not {type(value).__name__}")
    if len(value) == 0:
        raise ValidationError(f"messages is empty; send at least one, e.g. {example}")
    out: List[Dict[str, Any]] = []
    for i, m in enumerate(value):
        if isinstance(m, ChatMessage):
            m = m.to_dict()
        if not isinstance(m, Mapping):
            raise ValidationError(
                f'messages[{i}] must be a dict like {{"role": "user", "content": "Hello!"}} or a ChatMessage, '
                f"not {type(m).__name__}"
            )
        role = m.get("role")
        if role not in ROLES:
            raise ValidationError(f'messages[{i}]["role"] must be one of {", ".join(ROLES)}, not {role!r}')
        content = m.get("content")
        tool_calls = role == "assistant" and bool(m.get("tool_calls"))
        if content is None and not tool_calls:
            raise ValidationError(f'messages[{i}] has no "content"; give the text of the message')
        if content is not None and not isinstance(content, (str, list)):
            raise ValidationError(
                f'messages[{i}]["content"] must be a string (or a list of content parts), not {type(content).__name__}'
            )
        out.append(dict(m))
    return out


def prompt(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"prompt must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError("prompt is empty; give the text the model should continue")
    return value


def embed_input(value: Any) -> Union[str, List[str]]:
    if isinstance(value, str):
        if not value:
            raise ValidationError("input is empty; give the text to embed")
        return value
    if isinstance(value, bytes) or not isinstance(value, Sequence) or len(value) == 0:
        raise ValidationError('input must be a string or a non-empty list of strings, e.g. ["first", "second"]')
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ValidationError(f"input[{i}] must be a non-empty string, not {item!r}")
    return list(value)


def options(given: Mapping[str, Any]) -> Dict[str, Any]:
    """Request options passed through to the server (max_tokens, temperature, stop, seed, …)."""
    for name in _RESERVED:
        if name in given:
            raise ValidationError(f"{name} is an argument of its own; do not pass it among the options")
    _check_number(given, "max_tokens", integer=True, low=1)
    _check_number(given, "n", integer=True, low=1)
    _check_number(given, "seed", integer=True)
    _check_number(given, "temperature", low=0, high=2)
    _check_number(given, "top_p", low=0, high=1)
    stop = given.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
            raise ValidationError("stop must be a string or a list of strings")
    try:
        json.dumps(dict(given))
    except (TypeError, ValueError) as err:
        raise ValidationError(f"every option must be JSON (strings, numbers, lists, dicts): {err}") from None
    return dict(given)


def stream_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"stream must be True or False, not {value!r}")
    return value


def load_options(
    source: Optional[Any], sha256: Optional[Any], engine: Optional[Any], context_size: Optional[Any]
) -> None:
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise ValidationError(
            "source must say where the model comes from: a path the agent's owner allowed, "
            "an http(s) URL, hf:ORG/REPO/FILE.gguf or ollama:NAME:TAG"
        )
    if sha256 is not None and (not isinstance(sha256, str) or not re.fullmatch(r"[a-f0-9]{64}", sha256)):
        raise ValidationError("sha256 must be 64 lowercase hex digits")
    if engine is not None and engine not in ENGINES:
        raise ValidationError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if context_size is not None:
        _check_number({"context_size": context_size}, "context_size", integer=True, low=256, high=1_048_576)


def keep_alive(value: Any, *, ollama: bool) -> Any:
    """Seconds to keep a model loaded: -1 (until unloaded), 0 (unload now) or more; Ollama also takes "5m"."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= -1):
        return value
    if ollama and isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?(ms|s|m|h)?", value.strip()):
        return value
    raise ValidationError(
        f"keep_alive must be a whole number of seconds: -1 (until unloaded), 0 (unload now) or more, not {value!r}"
    )


def _check_number(
    given: Mapping[str, Any],
    name: str,
    *,
    integer: bool = False,
    low: Optional[float] = None,
    high: Optional[float] = None,
) -> None:
    if name not in given or given[name] is None:
        return
    value = given[name]
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and low is not None and value < low:
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:
        what = "a whole number" if integer else "a number"
        if low is not None and high is not None:
            what += f" from {low:g} to {high:g}"
        elif low is not None:
            what += f" of at least {low:g}"
        raise ValidationError(f"{name} must be {what}, not {value!r}")
