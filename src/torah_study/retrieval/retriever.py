"""Question → passages: direct ref lookup, or hybrid search, rerank and gate."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from torah_study.embeddings.base import EmbeddingError, Embeddings
from torah_study.index.base import (
    DenseLeg,
    Filters,
    FusingStore,
    Hit,
    KeywordLeg,
    Leg,
    SegmentRecord,
    SegmentStore,
    position_key,
    position_upper_bound,
)
from torah_study.library.catalog import Catalog
from torah_study.library.lexicon import Lexicon
from torah_study.library.links import Link, LinkIndex
from torah_study.library.refs import Ref
from torah_study.observability import stage
from torah_study.observability.tracing import include_question_text
from torah_study.retrieval.gate import apply_gate
from torah_study.retrieval.glossary import glossary_forms, translate_terms
from torah_study.retrieval.hybrid import (
    Candidate,
    reciprocal_rank_fusion,
    run_legs,
)
from torah_study.retrieval.query import (
    QueryAnalysis,
    analyze,
    content_terms,
    keyword_query,
)
from torah_study.retrieval.rerank import OfflineReranker, Reranker, RerankError

logger = logging.getLogger(__name__)

# A lookup of a whole chapter or daf returns at most this many segments.
MAX_LOOKUP_SEGMENTS = 60
# When a question names a commentator, its comments on this many of the best
# base passages join the candidates, at most this many per passage.
COMMENTED_PASSAGES = 8
COMMENTS_PER_PASSAGE = 6
# Terms a reformulation may add to a question's own.
MAX_EXTRA_TERMS = 12
# Other-language words searched for each term of a question.
MAX_TRANSLATIONS_PER_TERM = 4


@dataclass
class Passage:
    """A retrieved segment with the evidence that ranked it."""

    record: SegmentRecord
    score: float
    he_ref: str = ""
    keyword_rank: int | None = None
    dense_rank: int | None = None
    # Commentaries on the passage and passages linked to it.
    related: list[Link] = field(default_factory=list)


@dataclass
class Retrieval:
    """The outcome of retrieval for one question."""

    analysis: QueryAnalysis
    mode: Literal["lookup", "search", "invalid_ref", "abstain"]
    passages: list[Passage] = field(default_factory=list)
    message: str = ""
    best_score: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # Refs of every reranked candidate, best first (search mode only).
    ranking: list[str] = field(default_factory=list)
    # Whether a reformulated second search was made.
    retried: bool = False
    # Stages skipped or replaced because a remote provider failed, each with
    # the error ("rerank: …", "dense: …"); empty when every stage ran.
    degraded: list[str] = field(default_factory=list)


@dataclass
class RetrievalSettings:
    keyword_k: int = 300
    dense_k: int = 60
    rrf_k: int = 60
    rerank_candidates: int = 400
    top_k: int = 5
    gate_threshold: float = 0.275
    # Reformulate and search once more before abstaining; the retry's best
    # passage must score this much above the gate threshold.
    retry: bool = True
    retry_margin: float = 0.1
    # Let a store that can fuse in its own query (PostgreSQL) do so; the
    # candidates are the same as with fusion in Python.
    fuse_in_store: bool = True


class Retriever:
    """Runs one question through lookup or search; see ``retrieve``."""

    def __init__(
        self,
        store: SegmentStore,
        catalog: Catalog,
        embeddings: Embeddings | None,
        reranker: Reranker,
        settings: RetrievalSettings,
        links: LinkIndex | None = None,
        expander: Callable[[str], str] | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.embeddings = embeddings
        self.reranker = reranker
        self.settings = settings
        self.links = links
        # Writes a hypothetical passage for a question (an answer model).
        self.expander = expander
        self.lexicon = lexicon or Lexicon()

    def retrieve(self, question: str, filters: Filters = Filters()) -> Retrieval:
        with stage("retrieve") as span:
            if include_question_text():
                span.set("question", question)
            retrieval = self._retrieve(question, filters)
            if self.links is not None:
                for passage in retrieval.passages[: self.settings.top_k]:
                    passage.related = self.links.related(passage.record.ref)
            span.set("mode", retrieval.mode)
            span.set("language", retrieval.analysis.language)
            span.set("passages", len(retrieval.passages))
            span.set("best_score", retrieval.best_score)
            span.set("retried", retrieval.retried)
            span.set("filtered", bool(filters))
        return retrieval

    def _retrieve(self, question: str, filters: Filters) -> Retrieval:
        analysis = analyze(question, self.catalog)
        if analysis.unknown_work:
            work = analysis.unknown_work
            message = (
                f"\u05d4\u05d7\u05d9\u05d1\u05d5\u05e8 {work} \u05d0\u05d9\u05e0\u05d5 "
                "\u05d1\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4."
                if analysis.language == "he"
                else f"{work} is not in the library."
            )
            return Retrieval(analysis, "abstain", message=message)
        if analysis.refs:
            return self._lookup(analysis)
        if analysis.ref_errors:
            return Retrieval(
                analysis, "invalid_ref", message=" ".join(analysis.ref_errors)
            )
        return self._search(analysis, filters)

    def lookup(self, ref: Ref, limit: int = MAX_LOOKUP_SEGMENTS) -> list[SegmentRecord]:
        """Return the segments a ref covers, in order."""
        low = position_key(ref.start) if ref.start else ""
        high = position_upper_bound(ref.last)
        return self.store.span(ref.book, low, high, limit)

    def _lookup(self, analysis: QueryAnalysis) -> Retrieval:
        timings: dict[str, float] = {}
        passages: list[Passage] = []
        notes = list(analysis.ref_errors)
        with stage("lookup", timings, refs=len(analysis.refs)) as span:
            for ref in analysis.refs:
                records = self.lookup(ref)
                if len(records) == MAX_LOOKUP_SEGMENTS:
                    notes.append(
                        f"Showing the first {MAX_LOOKUP_SEGMENTS} segments of "
                        f"{ref.normal()}; ask for a narrower ref to see the rest."
                    )
                for record in records:
                    passages.append(Passage(record, 1.0, self._he_ref(record.ref)))
            span.set("segments", len(passages))
        if not passages:
            names = ", ".join(r.normal() for r in analysis.refs)
            return Retrieval(
                analysis,
                "invalid_ref",
                message=f"{names} has no text in the library.",
                timings=timings,
            )
        return Retrieval(
            analysis,
            "lookup",
            passages,
            message=" ".join(notes),
            best_score=1.0,
            timings=timings,
        )

    def _search(self, analysis: QueryAnalysis, filters: Filters) -> Retrieval:
        """Search once; when that is too weak to answer, reformulate and retry once.

        The retry searches with each known term also in the other language
        and, when an expander (an answer model) is configured, with a
        hypothetical passage for the question, over twice as many candidates.
        Its passages face the same gate.
        """
        analysis.translations = self._translations(analysis.terms)
        first = self._search_once(analysis, filters, widen=1)
        if first.mode != "abstain" or not self.settings.retry:
            return first
        # The span is named for the stage; the timing keeps its older name.
        with stage("rewrite", expander=self.expander is not None) as rewrite:
            second_analysis = self._reformulate(analysis)
            rewrite.set("changed", second_analysis is not None)
        if second_analysis is None:
            return first
        with stage("retry"):
            second = self._search_once(second_analysis, filters, widen=2)
        timings = dict(first.timings)
        timings["reformulate"] = rewrite.seconds
        for name, seconds in second.timings.items():
            timings[f"retry_{name}"] = seconds
        chosen = second if second.mode == "search" else first
        chosen.timings = timings
        chosen.retried = True
        chosen.degraded = list(dict.fromkeys([*first.degraded, *second.degraded]))
        if chosen is first:
            chosen.message = f"{first.message}; a reformulated search found no more"
        return chosen

    def _reformulate(self, analysis: QueryAnalysis) -> QueryAnalysis | None:
        """Return the question with terms in both languages, or None if nothing new."""
        extra = translate_terms(analysis.terms)
        passage = ""
        if self.expander is not None:
            try:
                passage = self.expander(analysis.text)
            except Exception:
                logger.exception("The expander failed; retrying without it")
        if passage:
            extra.extend(t for t in content_terms(passage) if t not in extra)
        if not extra and not passage:
            return None
        terms = [*analysis.terms, *extra[:MAX_EXTRA_TERMS]]
        return replace(
            analysis,
            terms=terms,
            translations=self._translations(terms),
            dense_text=f"{analysis.text}\n{passage}" if passage else analysis.text,
        )

    def _search_once(
        self, analysis: QueryAnalysis, filters: Filters, widen: int
    ) -> Retrieval:
        settings = self.settings
        timings: dict[str, float] = {}
        keyword_k, dense_k = settings.keyword_k * widen, settings.dense_k * widen

        degraded: list[str] = []
        # "dense" covers embedding the query and, when the legs run one by
        # one, the dense legs' searches.
        query_vector = None
        with stage("dense", timings, step="embed_query"):
            if self.embeddings is not None:
                try:
                    query_vector = self.embeddings.embed_queries(
                        [analysis.dense_text or analysis.text]
                    )[0]
                except EmbeddingError as error:
                    # Keyword search still finds passages, so the question is
                    # answered without the dense legs rather than failed.
                    logger.warning("Searching by keywords only: %s", error)
                    degraded.append(f"dense: {error}")

        legs = self._legs(analysis, filters, query_vector, keyword_k, dense_k)
        fused = self._fuse(legs, timings)[: settings.rerank_candidates * widen]
        with stage("fuse", timings, step="fetch_records") as span:
            records = {r.ref: r for r in self.store.get([c.ref for c in fused])}
            pairs = [(c, records[c.ref]) for c in fused if c.ref in records]
            pairs.extend(self._commentary_candidates(analysis, pairs))
            span.set("candidates", len(pairs))

        with stage("rerank", timings, candidates=len(pairs)) as span:
            vectors = (
                self.store.vectors_for([c.ref for c, _ in pairs])
                if query_vector is not None
                else {}
            )
            try:
                scored = self.reranker.rerank(analysis, query_vector, pairs, vectors)
                span.set("reranker", type(self.reranker).__name__)
            except RerankError as error:
                # The offline scorer needs no remote call, and the gate
                # threshold is calibrated on its scores, so it replaces the
                # failed reranker.
                logger.warning("Reranking with the offline scorer instead: %s", error)
                degraded.append(f"rerank: {error}")
                fallback = OfflineReranker(self.embeddings)
                scored = fallback.rerank(analysis, query_vector, pairs, vectors)
                span.set("reranker", type(fallback).__name__)

        # A retry has more ways to match, so its passages must clear a higher bar.
        threshold = settings.gate_threshold + (
            settings.retry_margin if widen > 1 else 0.0
        )
        decision = apply_gate(scored, threshold)
        ranking = [s.record.ref for s in scored]
        passages = [
            Passage(
                s.record,
                s.score,
                self._he_ref(s.record.ref),
                s.candidate.keyword_rank,
                s.candidate.dense_rank,
            )
            for s in scored[: settings.top_k]
        ]
        if not decision.passed:
            logger.info("Abstaining on %r: %s", analysis.text, decision.reason)
            return Retrieval(
                analysis,
                "abstain",
                [],
                message=decision.reason,
                best_score=decision.best_score,
                timings=timings,
                ranking=ranking,
                degraded=degraded,
            )
        return Retrieval(
            analysis,
            "search",
            passages,
            best_score=decision.best_score,
            timings=timings,
            ranking=ranking,
            degraded=degraded,
        )

    def _legs(
        self,
        analysis: QueryAnalysis,
        filters: Filters,
        query_vector: npt.NDArray[np.float32] | None,
        keyword_k: int,
        dense_k: int,
    ) -> list[Leg]:
        """Return the searches whose rankings are fused, in fusion order."""
        terms = keyword_query(analysis.terms)
        legs: list[Leg] = [KeywordLeg("keyword", terms, keyword_k, filters)]
        if query_vector is not None:
            legs.append(DenseLeg("dense", query_vector, dense_k, filters))
        translated = keyword_query(analysis.translated_terms)
        if translated:
            # The question's words in the other language reach passages that
            # the library has in one language only.
            legs.append(
                KeywordLeg("keyword-translated", translated, keyword_k, filters)
            )
        scope = self._scope(analysis)
        if scope and not filters:
            # The part of the library the question names gets legs of its own,
            # so its passages reach the reranker even when the whole library
            # contains closer matches for the words.
            legs.append(KeywordLeg("keyword-scoped", terms, keyword_k, scope))
            if translated:
                legs.append(
                    KeywordLeg(
                        "keyword-translated-scoped", translated, keyword_k, scope
                    )
                )
            if query_vector is not None:
                legs.append(DenseLeg("dense-scoped", query_vector, dense_k, scope))
        return legs

    def _fuse(self, legs: list[Leg], timings: dict[str, float]) -> list[Candidate]:
        """Fuse the legs by RRF, in one store query when the store offers it.

        Adds the seconds spent to ``timings``: with fusion in the store the
        whole query counts as "fuse", otherwise each leg counts as "keyword"
        or "dense" and the fusion as "fuse".
        """
        timings.setdefault("keyword", 0.0)
        if self.settings.fuse_in_store and isinstance(self.store, FusingStore):
            with stage("fuse", timings, legs=len(legs), in_store=True) as span:
                fused = self.store.fuse(legs, self.settings.rrf_k)
                span.set("fused", len(fused))
            return fused
        results: list[tuple[str, list[Hit]]] = []
        for leg in legs:
            kind = "keyword" if isinstance(leg, KeywordLeg) else "dense"
            with stage(kind, timings, leg=leg.name, k=leg.k) as span:
                hits = run_legs(self.store, [leg])
                span.set("hits", sum(len(found) for _, found in hits))
            results.extend(hits)
        with stage("fuse", timings, legs=len(legs), in_store=False) as span:
            fused = reciprocal_rank_fusion(results, k=self.settings.rrf_k)
            span.set("fused", len(fused))
        return fused

    def _translations(self, terms: list[str]) -> dict[str, list[str]]:
        """Return each term's words in the other language (glossary, then lexicon)."""
        translations: dict[str, list[str]] = {}
        for term in terms:
            if term.isascii():
                learned = self.lexicon.to_hebrew(term)
            else:
                learned = self.lexicon.to_english(term)
            forms = [
                w
                for w in dict.fromkeys([*glossary_forms(term), *learned])
                if w not in terms
            ][:MAX_TRANSLATIONS_PER_TERM]
            if forms:
                translations[term] = forms
        return translations

    def _scope(self, analysis: QueryAnalysis) -> Filters:
        """Return the filter for the books, commentaries and works a question names."""
        books = [
            *analysis.books,
            *self.catalog.commentaries_by(analysis.commentators),
        ]
        # Hints use one spelling of a category; the filter needs the stored one.
        categories = [
            self.catalog.stored_category(name) or name
            for name in (*analysis.works, *analysis.categories)
        ]
        return Filters(tuple(dict.fromkeys(books)), tuple(dict.fromkeys(categories)))

    def _commentary_candidates(
        self,
        analysis: QueryAnalysis,
        pairs: list[tuple[Candidate, SegmentRecord]],
    ) -> list[tuple[Candidate, SegmentRecord]]:
        """Return the named commentators' comments on the best base passages.

        "How does Rashi explain…" finds the verse first; Rashi's comments on
        that verse then join the candidates for the reranker.
        """
        if not analysis.commentators:
            return []
        seen = {record.ref for _, record in pairs}
        added: list[tuple[Candidate, SegmentRecord]] = []
        bases = [(c, r) for c, r in pairs if not self._is_commentary(r.book)]
        for candidate, record in bases[:COMMENTED_PASSAGES]:
            try:
                ref = self.catalog.parse(record.ref, validate=False)
            except ValueError:
                continue
            for commentator in analysis.commentators:
                book = self.catalog.commentary(commentator, ref.book)
                if book is None:
                    continue
                comments = self.store.span(
                    book.title,
                    position_key(ref.start),
                    position_upper_bound(ref.start),
                    COMMENTS_PER_PASSAGE,
                )
                for comment in comments:
                    if comment.ref in seen:
                        continue
                    seen.add(comment.ref)
                    # The comment inherits the rank evidence of its verse.
                    added.append(
                        (
                            Candidate(
                                comment.ref,
                                candidate.rrf,
                                candidate.keyword_rank,
                                candidate.keyword_score,
                                candidate.dense_rank,
                                candidate.dense_score,
                            ),
                            comment,
                        )
                    )
        return added

    def _is_commentary(self, title: str) -> bool:
        book = self.catalog.books.get(title)
        return bool(book and book.commentator)

    def _he_ref(self, ref: str) -> str:
        try:
            parsed = self.catalog.parse(ref, validate=False)
        except ValueError:
            return ""
        return parsed.hebrew(self.catalog.books[parsed.book].he_title)
