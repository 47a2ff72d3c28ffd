"""Server-sent events, as the OpenAI API streams them: only the data of each event matters here."""

from __future__ import annotations

from typing import List, Optional


class SSEDecoder:
    """Feed it lines (without their line break); it returns an event's data when the event ends."""

    def __init__(self) -> None:
        self._data: List[str] = []

    def feed(self, line: str) -> Optional[str]:
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None  # a comment, e.g. a keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> Optional[str]:
        """The data of an event the stream ended without a blank line after."""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data
