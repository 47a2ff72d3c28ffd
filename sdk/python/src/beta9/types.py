"""What the calls return. Each result keeps the server's whole answer in ``raw``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def parse(cls, value: Any) -> Optional[Usage]:
        if not isinstance(value, dict):
            return None
        prompt = _int(value.get("prompt_tokens"))
        completion = _int(value.get("completion_tokens"))
        total = _int(value.get("total_tokens")) or prompt + completion
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


@dataclass(frozen=True)
class ChatResult:
    """A chat answer: ``content`` is the assistant's text."""

    content: str
    model: str
    finish_reason: Optional[str]
    usage: Optional[Usage]
    #: The assistant message as sent (role, content, and tool calls when there are any).
    message: Dict[str, Any]
    id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
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
class GenerateResult:
    """A text completion: ``content`` (also ``text``) is what the model wrote after the prompt."""

    content: str
    model: str
    finish_reason: Optional[str]
    usage: Optional[Usage]
    id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        return self.content

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
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def embedding(self) -> List[float]:
        return self.embeddings[0] if self.embeddings else []


@dataclass(frozen=True)
class Model:
    """A model the server can answer with now."""

    id: str
    owned_by: Optional[str] = None
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


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
