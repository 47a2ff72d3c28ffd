"""What the calls return. Each result keeps the server's whole answer in ``raw``.

The names and attributes of the fork's SDK (``InferenceResult``, ``EmbeddingResult``, ``ModelInfo``,
``ChatMessage``, ``InferenceOptions``; ``.ok``, ``.error``, ``usage["prompt_tokens"]``,
``m.load_state``) are kept, so code written for it reads these results unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterator, List, Optional


@dataclass(frozen=True)
class Usage(Mapping):  # type: ignore[type-arg]
    """Token counts; read as attributes (``usage.prompt_tokens``) or as a dict (``usage["prompt_tokens"]``)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def parse(cls, value: Any) -> Optional[Usage]:
        if not isinstance(value, dict):
            return None
        return cls.of(_int(value.get("prompt_tokens")), _int(value.get("completion_tokens")), value.get("total_tokens"))

    @classmethod
    def of(cls, prompt: int, completion: int, total: Any = None) -> Usage:
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=_int(total) or prompt + completion)

    def __getitem__(self, key: str) -> int:
        if key not in _USAGE_KEYS:
            raise KeyError(key)
        return int(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(_USAGE_KEYS)

    def __len__(self) -> int:
        return len(_USAGE_KEYS)


_USAGE_KEYS = tuple(f.name for f in fields(Usage))


@dataclass(frozen=True)
class ChatMessage:
    """A chat message, as the fork's SDK spelled one; a dict ``{"role": …, "content": …}`` does as well."""

    role: str
    content: str

    def to_dict(self) -> Dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class InferenceOptions:
    """The fork's bundle of generation options, passed as ``options=``; a dict of the same names (or
    Ollama's, such as ``num_predict``) does as well. ``max_tokens=None`` means the SDK's default cap."""

    temperature: float = 0.7
    max_tokens: Optional[int] = None
    stream: bool = False
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0


@dataclass(frozen=True)
class InferenceResult:
    """A generation: ``content`` is the model's text. A failed call raises, so a result is always
    ``ok`` and its ``error`` is None (both kept for code written for the fork's SDK)."""

    content: str
    model: str
    finish_reason: Optional[str] = None
    usage: Optional[Usage] = None
    id: Optional[str] = None
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True)
class ChatResult(InferenceResult):
    """A chat answer: ``content`` is the assistant's text."""

    #: The assistant message as sent (role, content, and tool calls when there are any).
    message: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateResult(InferenceResult):
    """A text completion: ``content`` (also ``text``) is what the model wrote after the prompt."""

    @property
    def text(self) -> str:
        return self.content


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed chat answer: ``content`` is the new text (may be empty)."""

    content: str
    model: str
    finish_reason: Optional[str]
    #: Only on the last chunk, when the server sends the token counts.
    usage: Optional[Usage]
    role: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True)
class GenerateChunk:
    """One piece of a streamed completion."""

    content: str
    model: str
    finish_reason: Optional[str]
    usage: Optional[Usage]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        return self.content

    def __str__(self) -> str:
        return self.content


@dataclass(frozen=True)
class EmbedResult:
    """Embeddings in the order of the inputs; ``embedding`` is the first (the only one for one input)."""

    embeddings: List[List[float]]
    model: str
    usage: Optional[Usage]
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def embedding(self) -> List[float]:
        return self.embeddings[0] if self.embeddings else []

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Model:
    """A model the server lists: ``load_state`` is "ready" when it answers now, "idle" when it is
    listed but would be loaded first (a deployment scaled to zero, a model Ollama has on disk)."""

    id: str
    owned_by: Optional[str] = None
    load_state: str = "ready"
    size_gb: float = 0.0
    last_used: Optional[str] = None
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.id

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Health:
    status: str
    version: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __bool__(self) -> bool:
        # The fork's health() returned a bool: `if inference.health():` keeps meaning "it is up".
        return self.ok


@dataclass(frozen=True)
class ModelStatus:
    """A model after load_model: where and how it is served, as far as the server says."""

    name: str
    #: "ready" once it answers; an agent may also say "starting" or "error".
    state: str
    engine: Optional[str] = None
    memory_bytes: Optional[int] = None
    context_size: Optional[int] = None
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        # The fork's load_model() returned True when the model was loaded.
        return self.state == "ready"


# The fork's names for the same results.
EmbeddingResult = EmbedResult
ModelInfo = Model


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
