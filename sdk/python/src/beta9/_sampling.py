"""What the caller asked of a generation, in one form whatever way it was asked (the fork's
``options=`` as InferenceOptions or a dict, keyword options, Ollama's names), and how each API spells it.

Nothing asked is dropped: an option the server's API has no field for is refused, with what to do instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping

from . import _validate as check
from .errors import ValidationError
from .types import InferenceOptions

#: The cap on generated tokens when the caller sets none: a small model on a CPU otherwise writes until
#: its context is full (the fork's README example once ran for minutes and wrote 8,181 tokens).
DEFAULT_MAX_TOKENS = 512

#: Sampling options the OpenAI API of Beta9 machines takes (top_k, min_p and repeat_penalty are the
#: llama.cpp/vLLM extensions the builtin engine shares).
OPENAI_SAMPLING = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "top_k",
    "min_p",
    "repeat_penalty",
)
#: Options only Ollama's API has.
OLLAMA_ONLY = (
    "num_ctx",
    "num_keep",
    "typical_p",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "tfs_z",
    "penalize_newline",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
    "numa",
    "use_mmap",
    "use_mlock",
    "low_vram",
)
SAMPLING = OPENAI_SAMPLING + OLLAMA_ONLY + ("num_predict",)
#: Top-level fields of Ollama's /api/chat and /api/generate besides model, messages, prompt and stream.
OLLAMA_FIELDS = ("format", "keep_alive", "tools", "think", "system", "template", "raw", "suffix", "images", "context")


@dataclass(frozen=True)
class Generation:
    #: Sampling options by their OpenAI names (max_tokens absent: no cap).
    sampling: Dict[str, Any]
    #: Other fields of the request, sent as given.
    extra: Dict[str, Any]
    stream: bool


def generation(options: Any, keywords: Mapping[str, Any], stream: Any) -> Generation:
    """Merge ``options=`` (InferenceOptions or a dict) with keyword options; add the default cap."""
    stream = check.stream_flag(stream)
    asked: Dict[str, Any] = {}
    if isinstance(options, InferenceOptions):
        fork = asdict(options)
        stream = stream or bool(fork.pop("stream"))
        asked.update({k: v for k, v in fork.items() if v is not None})
    elif isinstance(options, Mapping):
        unknown = sorted(str(k) for k in options if k not in SAMPLING)
        if unknown:
            raise ValidationError(
                f"options has unknown key(s) {', '.join(unknown)}; it takes {', '.join(OPENAI_SAMPLING)}, "
                f"num_predict and Ollama's {', '.join(OLLAMA_ONLY)}"
            )
        asked.update(options)
    elif options is not None:
        raise ValidationError(
            f"options must be a dict such as {{'temperature': 0.2, 'max_tokens': 64}} or an InferenceOptions, "
            f"not {type(options).__name__}"
        )
    extra: Dict[str, Any] = {}
    for name, value in keywords.items():
        if name not in SAMPLING:
            extra[name] = value
        elif name in asked and asked[name] != value:
            raise ValidationError(f"{name} is given twice, as {name}= and in options=, with different values")
        else:
            asked[name] = value
    _cap(asked)
    check.options(extra)
    check.options(asked)
    return Generation(sampling=asked, extra=extra, stream=stream)


def _cap(asked: Dict[str, Any]) -> None:
    """num_predict → max_tokens; the default cap unless one is given (None, or num_predict < 0: no cap)."""
    if "num_predict" in asked:
        n = asked.pop("num_predict")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n == 0):
            raise ValidationError(f"num_predict must be a whole number (above 0, or -1 for no limit), not {n!r}")
        n = None if n is None or n < 0 else n
        if "max_tokens" in asked and asked["max_tokens"] != n:
            raise ValidationError("num_predict and max_tokens are the same option; give one of them")
        asked["max_tokens"] = n
    if "max_tokens" not in asked:
        asked["max_tokens"] = DEFAULT_MAX_TOKENS
    elif asked["max_tokens"] is None:
        del asked["max_tokens"]


def openai_fields(g: Generation, where: str) -> Dict[str, Any]:
    """The generation's fields of an OpenAI request."""
    ollama_only = sorted(k for k in g.sampling if k in OLLAMA_ONLY)
    if ollama_only:
        hint = "; a context size is chosen when the model is loaded (load_model(context_size=))"
        raise ValidationError(
            f"{', '.join(ollama_only)}: only Ollama's API takes {'this option' if len(ollama_only) == 1 else 'these'}, "
            f"and {where} speaks the OpenAI API, which would ignore {'it' if len(ollama_only) == 1 else 'them'}"
            f"{hint if 'num_ctx' in ollama_only else ''}"
        )
    return {**g.sampling, **g.extra}


def ollama_fields(g: Generation, where: str) -> Dict[str, Any]:
    """The generation's fields of an Ollama request: sampling under ``options``, max_tokens as num_predict."""
    unknown = sorted(k for k in g.extra if k not in OLLAMA_FIELDS)
    if unknown:
        raise ValidationError(
            f"{', '.join(unknown)}: {where} speaks Ollama's API, which has no such field "
            f"(it takes {', '.join(OLLAMA_FIELDS)}, and the options {', '.join(SAMPLING)})"
        )
    options = {("num_predict" if k == "max_tokens" else k): v for k, v in g.sampling.items()}
    if isinstance(options.get("stop"), str):
        options["stop"] = [options["stop"]]
    out: Dict[str, Any] = dict(g.extra)
    if options:
        out["options"] = options
    return out

