"""The interface every answer model implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class ProviderError(RuntimeError):
    """Raised when an answer model cannot be loaded or fails while generating."""


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation, for the providers that report them."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class AnswerModel(Protocol):
    """A chat model that streams text pieces for a list of messages.

    Implementations use temperature 0 so that the same sources give the same answer.
    """

    name: str

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield the answer as text pieces; raise ProviderError on failure.

        A model that knows its token counts yields one Usage after the text.
        """
        ...
