"""One turn of a saved conversation: question in, answer streamed and stored.

The server saves both messages. The answer row exists from the moment the
stream starts (status ``streaming``); its text is written as it grows, and it
ends ``complete``, ``interrupted`` (the client left or the provider broke off,
partial text kept) or ``failed`` (nothing was produced).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from torah_study.answer.pipeline import (
    AnswerCancelled,
    AnswerPipeline,
    DoneEvent,
    ErrorEvent,
    Event,
    SourcesEvent,
    TokenEvent,
    VerificationEvent,
)
from torah_study.conversations.followup import Turn
from torah_study.conversations.store import ConversationStore, NotFound, StartedTurn
from torah_study.index.base import Filters

logger = logging.getLogger(__name__)

# How often the growing answer is written while it streams.
SAVE_EVERY_SECONDS = 1.0

Rewriter = Callable[[str, list[Turn]], str]

DELETED = "The conversation was deleted while this answer was being written."


@dataclass
class TurnRun:
    """A started turn, the generator that answers it, and its stop signal.

    Setting ``cancel`` stops the answer model at its next piece. The answer
    is then saved ``interrupted`` with the text produced so far.
    """

    started: StartedTurn
    query: str
    events: Iterator[Event]
    cancel: threading.Event


class ConversationChat:
    def __init__(
        self, store: ConversationStore, pipeline: AnswerPipeline, rewriter: Rewriter
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.rewriter = rewriter

    def start(
        self,
        user_id: str,
        conversation_id: str,
        content: str,
        filters: Filters = Filters(),
    ) -> TurnRun:
        """Save the question, open the answer row, and return its event stream.

        Raises NotFound when the conversation is not the user's.
        """
        history = self.store.history(user_id, conversation_id)
        query = self.rewriter(content, history) if history else content
        started = self.store.start_turn(user_id, conversation_id, content, query)
        cancel = threading.Event()
        events = self._run(started, query, filters, cancel)
        return TurnRun(started, query, events, cancel)

    def abandon(self, started: StartedTurn) -> None:
        """Close an answer whose stream never began."""
        self.store.finish(
            started.assistant_message.id,
            status="interrupted",
            content="",
            provider=self.pipeline.provider_name,
            error="The answer was stopped before it began.",
        )

    def _run(
        self,
        started: StartedTurn,
        query: str,
        filters: Filters,
        cancel: threading.Event,
    ) -> Iterator[Event]:
        message_id = started.assistant_message.id
        began = time.perf_counter()
        text: list[str] = []
        saved_at = time.monotonic()
        saved_length = 0
        length = 0
        verification: dict[str, object] | None = None
        ranks: list[int] = []
        finished = False
        try:
            for event in self.pipeline.run(query, filters, cancel):
                if isinstance(event, SourcesEvent):
                    try:
                        self.store.save_sources(message_id, event.sources)
                    except NotFound:
                        logger.info("Conversation of answer %s was deleted", message_id)
                        yield ErrorEvent(DELETED, "conversation_deleted")
                        return
                    ranks = [int(source["n"]) for source in event.sources]
                elif isinstance(event, TokenEvent):
                    text.append(event.text)
                    length += len(event.text)
                    since = time.monotonic() - saved_at
                    # Written when it grew, and now and then regardless, so
                    # the row shows that its stream is alive. The text is
                    # joined only when it is written, not on every token.
                    grew = length != saved_length
                    if since >= SAVE_EVERY_SECONDS and (grew or since >= 30):
                        self.store.save_partial(message_id, "".join(text))
                        saved_length = length
                        saved_at = time.monotonic()
                elif isinstance(event, VerificationEvent):
                    verification = event.report
                elif isinstance(event, DoneEvent):
                    if cancel.is_set():
                        # The client left after the model's last piece, so
                        # the answer it received was not complete.
                        logger.info("Answer %s was stopped at its end", message_id)
                        return
                    verified = _verified_ranks(event, verification, ranks)
                    first = event.timings.get("first_token")
                    self.store.finish(
                        message_id,
                        status="complete",
                        content=event.answer,
                        mode=event.mode,
                        provider=event.provider,
                        latency_ms=(time.perf_counter() - began) * 1000,
                        first_token_ms=first * 1000 if first is not None else None,
                        verification=verification,
                        verified_ranks=verified,
                        prompt_tokens=event.usage.get("prompt_tokens"),
                        completion_tokens=event.usage.get("completion_tokens"),
                    )
                    finished = True
                elif isinstance(event, ErrorEvent):
                    partial = "".join(text)
                    self.store.finish(
                        message_id,
                        status="interrupted" if partial else "failed",
                        content=partial,
                        latency_ms=(time.perf_counter() - began) * 1000,
                        provider=self.pipeline.provider_name,
                        error=event.message,
                    )
                    finished = True
                yield event
        except AnswerCancelled:
            logger.info("Answer %s was cancelled", message_id)
        finally:
            # Reached when the stream is closed or cancelled early (the
            # client left) or an exception escaped: keep what was written.
            if not finished:
                # TODO: an answer stopped at the end of the shutdown grace
                # period also gets this error text, not one naming the shutdown.
                partial = "".join(text)
                self.store.finish(
                    message_id,
                    status="interrupted",
                    content=partial,
                    latency_ms=(time.perf_counter() - began) * 1000,
                    provider=self.pipeline.provider_name,
                    error="The answer was stopped before it ended.",
                )


def _verified_ranks(
    done: DoneEvent, verification: dict[str, object] | None, ranks: list[int]
) -> list[int]:
    """Sources whose citation passed verification.

    A sources-only answer quotes every listed source from the library itself;
    an abstention cites nothing.
    """
    if done.provider == "sources-only":
        return ranks
    if done.provider == "none" or not verification:
        return []
    cited = verification.get("citations")
    if not isinstance(cited, list):
        return []
    return [rank for rank in ranks if rank in cited]
