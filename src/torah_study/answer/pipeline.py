"""Question → events: sources, verified tokens, verification report, done or error.

One typed event sequence serves the API (as SSE and as JSON), the CLI and the
tests. Model output is verified one sentence at a time before it is yielded,
so a sentence that fails verification never reaches the learner.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from torah_study.answer.llm.base import AnswerModel, ProviderError, Usage
from torah_study.answer.prompts import (
    ABSTAIN,
    LOOKUP_INTRO,
    RABBI,
    RABBI_NO_SOURCES,
    SOURCES_INTRO,
    build_messages,
)
from torah_study.answer.verify import VerificationReport, Verifier, split_sentences
from torah_study.index.base import Filters
from torah_study.library.catalog import Catalog
from torah_study.library.hebrew import normalize
from torah_study.observability import (
    observe_answer,
    observe_answer_error,
    observe_provider_error,
    record_span,
    stage,
)
from torah_study.observability.tracing import include_question_text
from torah_study.providers.breaker import CircuitOpenError
from torah_study.retrieval.retriever import Passage, Retrieval, Retriever

logger = logging.getLogger(__name__)

QUOTE_CHARS = 220


@dataclass
class SourcesEvent:
    sources: list[dict[str, Any]]
    mode: str
    # Every reranked candidate's ref, best first, of which ``sources`` are
    # the top few. The evaluation reads it; the API does not send it.
    ranking: list[str] = field(default_factory=list)
    # The gate's evidence: the best reranked score (1.0 for a lookup).
    best_score: float = 0.0
    kind: Literal["sources"] = "sources"


@dataclass
class TokenEvent:
    text: str
    kind: Literal["token"] = "token"


@dataclass
class VerificationEvent:
    report: dict[str, Any]
    kind: Literal["verification"] = "verification"


@dataclass
class DoneEvent:
    answer: str
    mode: str
    provider: str
    refs: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    # Token counts reported by the answer model, when it reports them.
    usage: dict[str, int] = field(default_factory=dict)
    kind: Literal["done"] = "done"


@dataclass
class ErrorEvent:
    message: str
    code: str = "internal_error"
    kind: Literal["error"] = "error"


Event = SourcesEvent | TokenEvent | VerificationEvent | DoneEvent | ErrorEvent


class AnswerBrokenOff(ProviderError):
    """The answer model failed after part of the answer reached the learner.

    Falling back to a sources-only answer at that point would contradict what
    was already shown, so the stream ends with an error and the partial text.
    """

    def __init__(self, kept: str, cause: ProviderError) -> None:
        super().__init__(f"The answer model stopped mid-answer: {cause}")
        self.kept = kept


class AnswerCancelled(Exception):
    """The consumer of the answer stream set its cancel event.

    It is not a ProviderError, so a stopped answer gets no sources-only
    fallback.
    """


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise AnswerCancelled("The answer was stopped by its consumer.")


def source_payload(number: int, passage: Passage) -> dict[str, Any]:
    record = passage.record
    return {
        "n": number,
        "ref": record.ref,
        "he_ref": passage.he_ref,
        "he": record.he,
        "en": record.en,
        "score": round(passage.score, 4),
        "book": record.book,
        "categories": record.categories,
        "versions": {"he": record.he_version, "en": record.en_version},
        "licenses": {"he": record.he_license, "en": record.en_license},
        "related": [{"ref": link.ref, "kind": link.kind} for link in passage.related],
    }


# Footnote markers inside a source's own text, such as "love[2]". Copied into
# an answer they would read as citations of other sources.
_FOOTNOTE = re.compile(r"\[(\d{1,3})\]")


# Double quotation marks inside a quoted source, except gershayim between two
# letters (רמב"ם, and Rem"a in a translation). They become single marks, as
# nested quotations are written, so the quotation around the source is not
# closed early.
_INNER_QUOTE = re.compile('(?<![A-Za-z\u05d0-\u05ea])"|"(?![A-Za-z\u05d0-\u05ea])')


def quote_text(text: str) -> str:
    """Return ``text`` clipped for quoting: footnote markers as ``(2)``, and
    inner double quotation marks as single ones."""
    quoted = _FOOTNOTE.sub(r"(\1)", clip(text))
    quoted = quoted.replace("\u201c", "\u2018").replace("\u201d", "\u2019")
    return _INNER_QUOTE.sub("'", quoted)


def clip(text: str, limit: int = QUOTE_CHARS) -> str:
    """Cut ``text`` at a word boundary and mark the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " \u2026"


def sources_only_answer(
    passages: Sequence[Passage], language: str, practical: bool, lookup: bool
) -> str:
    """Write the deterministic answer used when no model is available."""
    intro = (LOOKUP_INTRO if lookup else SOURCES_INTRO)[language]
    lines = [intro, ""]
    for number, passage in enumerate(passages, start=1):
        record = passage.record
        ref = passage.he_ref if language == "he" and passage.he_ref else record.ref
        first, second = (
            (record.he, record.en) if language == "he" else (record.en, record.he)
        )
        main = first or second
        lines.append(f"[{number}] {ref}: \u201c{quote_text(main)}\u201d")
        other = second if first else ""
        if other:
            lines.append(f"    \u201c{quote_text(other)}\u201d")
    if practical:
        lines.extend(["", RABBI[language]])
    return "\n".join(lines) + "\n"


def _emit_lines(text: str) -> Generator[Event, None, float]:
    """Yield a sources-only answer line by line and return when it started.

    Its quotations are copied from the passages themselves, so they are not
    verified: checking a source against itself would only catch the source's
    own footnotes and references.
    """
    started = time.perf_counter()
    for line in text.splitlines(keepends=True):
        yield TokenEvent(line)
    return started


class AnswerPipeline:
    """Runs retrieval, the answer model and verification for one question."""

    def __init__(
        self,
        retriever: Retriever,
        catalog: Catalog,
        model: AnswerModel | None,
        max_tokens: int = 512,
    ) -> None:
        self.retriever = retriever
        self.catalog = catalog
        self.model = model
        self.max_tokens = max_tokens

    @property
    def provider_name(self) -> str:
        return self.model.name if self.model is not None else "sources-only"

    def run(
        self,
        question: str,
        filters: Filters = Filters(),
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Yield the events for ``question``, ending with a done or an error event.

        Failures in retrieval or in the answer model become error events.
        Setting ``cancel`` stops the answer model at its next piece, even
        while no event is due, and makes the generator raise AnswerCancelled.
        """
        # The last event is yielded after the answer span has ended, so a
        # consumer that stops reading at it leaves no span open.
        with stage("answer") as answer:
            if include_question_text():
                answer.set("question", question)
            last = yield from self._run(question, filters, cancel)
            answer.set("outcome", last.kind)
            if isinstance(last, DoneEvent):
                answer.set("mode", last.mode)
                answer.set("provider", last.provider)
                answer.set("sources", len(last.refs))
        yield last

    def _run(
        self, question: str, filters: Filters, cancel: threading.Event | None
    ) -> Generator[Event, None, DoneEvent | ErrorEvent]:
        """Yield the events before the last one, and return the last one."""
        started = time.perf_counter()
        try:
            retrieval = self.retriever.retrieve(question, filters)
        except Exception as error:
            logger.exception("Retrieval failed for %r", question)
            observe_answer_error("retrieval_failed")
            return ErrorEvent(f"Retrieval failed: {error}", "retrieval_failed")
        passages = retrieval.passages
        yield SourcesEvent(
            [source_payload(n, p) for n, p in enumerate(passages, start=1)],
            retrieval.mode,
            retrieval.ranking or [p.record.ref for p in passages],
            retrieval.best_score,
        )
        language = retrieval.analysis.language
        timings = dict(retrieval.timings)
        try:
            answer, report, provider, first_token, usage = yield from self._answer(
                retrieval, language, cancel, timings
            )
        except AnswerCancelled:
            raise
        except AnswerBrokenOff as error:
            logger.error("Answer for %r broke off: %s", question, error)
            observe_answer_error("answer_interrupted")
            return ErrorEvent(str(error), "answer_interrupted")
        except ProviderError as error:
            logger.error("Answer model failed for %r: %s", question, error)
            unavailable = isinstance(error.__cause__, CircuitOpenError)
            code = "answer_model_unavailable" if unavailable else "answer_failed"
            observe_answer_error(code)
            return ErrorEvent(f"The answer model failed: {error}", code)
        except Exception as error:
            logger.exception("Answering failed for %r", question)
            observe_answer_error("answer_failed")
            return ErrorEvent(f"Answering failed: {error}", "answer_failed")
        yield VerificationEvent(report.as_dict())
        if first_token is not None:
            timings["first_token"] = first_token - started
        timings["total"] = time.perf_counter() - started
        refs = [p.record.ref for p in passages]
        counts = {}
        if usage is not None:
            counts = {
                name: value
                for name, value in (
                    ("prompt_tokens", usage.prompt_tokens),
                    ("completion_tokens", usage.completion_tokens),
                )
                if value is not None
            }
        observe_answer(retrieval.mode, provider, timings, counts, report.as_dict())
        return DoneEvent(answer, retrieval.mode, provider, refs, timings, counts)

    def _answer(
        self,
        retrieval: Retrieval,
        language: str,
        cancel: threading.Event | None,
        timings: dict[str, float],
    ) -> Generator[
        Event, None, tuple[str, VerificationReport, str, float | None, Usage | None]
    ]:
        passages = retrieval.passages
        verifier = Verifier(self.catalog, passages)
        practical = retrieval.analysis.practical
        if retrieval.mode in ("invalid_ref", "abstain"):
            text = (
                retrieval.message
                if retrieval.mode == "invalid_ref"
                else ABSTAIN[language]
            )
            # An unknown work's message ("Zohar is not in the library.") comes
            # first; a gate's reason is for the log only.
            named = retrieval.message.endswith(
                ("library.", "\u05d1\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4.")
            )
            if retrieval.mode == "abstain" and named:
                text = f"{retrieval.message} {ABSTAIN[language]}"
            if retrieval.mode == "abstain" and practical:
                # A practical question still deserves a pointer to a rabbi.
                text = f"{text}\n\n{RABBI_NO_SOURCES[language]}"
            yield TokenEvent(text)
            return text, verifier.report, "none", time.perf_counter(), None

        lookup = retrieval.mode == "lookup"
        if self.model is None or lookup:
            text = sources_only_answer(passages, language, practical, lookup)
            if retrieval.message:
                text = f"{retrieval.message}\n\n{text}"
            started = yield from _emit_lines(text)
            return text, verifier.report, "sources-only", started, None

        messages = build_messages(
            retrieval.analysis.text, language, passages, practical=practical
        )
        verifier.require_citations = True
        verifier.practical = practical
        verifier.exempt = [normalize(t) for t in (*RABBI.values(), *ABSTAIN.values())]
        _check_cancel(cancel)
        # A ProviderError before any text ends the answer with an error event
        # rather than a sources-only answer, so the stored message shows that
        # the model failed and the learner can ask again. The sources event
        # already carried the passages.
        try:
            # "generate" lasts from the request to the model until its stream
            # ends, so it includes verification and the consumer's pauses.
            with stage("generate", timings, provider=self.model.name) as generate:
                pieces = self.model.stream(messages, max_tokens=self.max_tokens)
                kept, first, usage = yield from self._emit_verified(
                    pieces, verifier, cancel, timings
                )
                if usage is not None:
                    generate.set("prompt_tokens", usage.prompt_tokens or 0)
                    generate.set("completion_tokens", usage.completion_tokens or 0)
                report = verifier.report
                record_span(
                    "verify",
                    timings.get("verify", 0.0),
                    {
                        "sentences": report.sentences,
                        "removed": len(report.removed),
                        "citations": len(set(report.citations)),
                        "quotes_checked": report.quotes_checked,
                    },
                )
        except (AnswerBrokenOff, ProviderError) as error:
            observe_provider_error(self.model.name, error)
            raise
        if practical and RABBI[language] not in kept:
            tail = "\n\n" + RABBI[language]
            yield TokenEvent(tail)
            kept += tail
        if not verifier.report.citations:
            # Nothing cited survived verification: show the sources themselves.
            verifier.report.fallback = True
            fallback = ("\n\n" if kept else "") + sources_only_answer(
                passages, language, practical and RABBI[language] not in kept, False
            )
            first = first or time.perf_counter()
            yield TokenEvent(fallback)
            kept += fallback
            return kept, verifier.report, "sources-only", first, usage
        return kept, verifier.report, self.model.name, first, usage

    def _emit_verified(
        self,
        source: str | Iterator[str | Usage],
        verifier: Verifier,
        cancel: threading.Event | None = None,
        timings: dict[str, float] | None = None,
    ) -> Generator[Event, None, tuple[str, float | None, Usage | None]]:
        """Yield verified sentences as they complete; return the text and first time.

        ``cancel`` is checked after every model piece, so a model that writes
        a long unfinished sentence still stops soon after it is set. The
        model's stream is closed on every exit. The seconds spent verifying
        are added to ``timings["verify"]``.
        """
        checks: dict[str, float] = timings if timings is not None else {}

        def accept(sentence: str) -> bool:
            started = time.perf_counter()
            try:
                return verifier.accept(sentence)
            finally:
                elapsed = time.perf_counter() - started
                checks["verify"] = checks.get("verify", 0.0) + elapsed

        pieces = iter([source]) if isinstance(source, str) else source
        buffer = ""
        kept = ""
        first: float | None = None
        usage: Usage | None = None
        try:
            for piece in pieces:
                _check_cancel(cancel)
                if isinstance(piece, Usage):
                    usage = piece
                    continue
                buffer += piece
                sentences = split_sentences(buffer)
                # The last piece may be an unfinished sentence: keep it buffered.
                complete, buffer = sentences[:-1], sentences[-1] if sentences else ""
                for sentence in complete:
                    if accept(sentence):
                        first = first or time.perf_counter()
                        kept += sentence
                        yield TokenEvent(sentence)
        except ProviderError as error:
            if kept:
                raise AnswerBrokenOff(kept, error) from error
            raise
        finally:
            # A local model holds its lock until its stream is closed.
            close = getattr(pieces, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("Closing the answer model's stream failed")
        if buffer and accept(buffer):
            first = first or time.perf_counter()
            kept += buffer
            yield TokenEvent(buffer)
        return kept, first, usage
