"""Retries for a streamed answer: only while nothing of it was yielded.

A request that fails before its first text piece is sent again under a
RetryPolicy. Once a piece was yielded, a retry would repeat text the learner
already received, so a later failure ends the stream with ProviderError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from torah_study.answer.llm.base import ProviderError, Usage
from torah_study.embeddings.retry import Failure, RetryPolicy, call_with_retries
from torah_study.providers.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

Piece = str | Usage


def _close(pieces: Iterator[Piece]) -> None:
    close = getattr(pieces, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.debug("Closing a failed answer stream raised", exc_info=True)


def retrying_stream(
    open_stream: Callable[[], Iterator[Piece]],
    classify: Callable[[Exception], Failure | None],
    policy: RetryPolicy,
    *,
    operation: str,
    breaker: CircuitBreaker | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Piece]:
    """Yield the pieces of ``open_stream()``, opening it again on early failures.

    Each attempt opens the stream and reads up to its first text piece. A
    failure up to there is retried as ``classify`` decides. A failure after it
    raises ProviderError at once, and counts towards ``breaker``.
    """

    def first_piece() -> tuple[Iterator[Piece], list[Piece]]:
        pieces = open_stream()
        head: list[Piece] = []
        try:
            for piece in pieces:
                head.append(piece)
                if isinstance(piece, str):
                    break
        except BaseException:
            _close(pieces)
            raise
        return pieces, head

    pieces, head = call_with_retries(
        first_piece,
        classify,
        policy,
        operation=operation,
        sleep=sleep,
        breaker=breaker,
        error_type=ProviderError,
    )
    try:
        yield from head
        yield from pieces
    except Exception as error:
        failure = classify(error)
        if failure is None:
            raise
        if breaker is not None and not failure.rejected:
            breaker.record_failure()
        raise ProviderError(
            f"{operation} failed after part of the answer was sent: "
            f"{failure.description}"
        ) from error
    finally:
        _close(pieces)
