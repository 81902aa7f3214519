"""Answer models for tests that stop a stream while the model is writing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from torah_study.answer.llm.base import ChatMessage


class UnfinishedSentenceModel:
    """Streams words with no sentence end for seconds, counting the pieces.

    The pipeline shows nothing while a sentence is unfinished, so no event
    reaches the stream until the model ends its sentence.
    """

    name = "unfinished"

    def __init__(self, words: int, delay: float) -> None:
        self.words = words
        self.delay = delay
        self.requested = 0
        self.closed = threading.Event()

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        try:
            for _ in range(self.words):
                self.requested += 1
                time.sleep(self.delay)
                yield "word "
            self.requested += 1
            yield "about Leviticus 19:18 [1]."
        finally:
            self.closed.set()
