"""A call as data: the requests it sends and the pauses between them, driven by Client or AsyncClient.

A call that needs several requests (finding the server's API, loading a model, waiting for it to go) is
a *plan*: a generator that yields ``Request``s and ``Pause``s and is sent back each answer's JSON (or
thrown its error); the sync and the async client each drive it with their own HTTP client and sleep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Optional, TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None
    #: Seconds for this request instead of the client's timeout (loading a model takes longer).
    timeout: Optional[float] = None


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Union[Request, Pause]
Plan = Generator[Step, Any, T]
