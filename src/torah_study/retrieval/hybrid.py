"""Keyword and dense legs over the whole index, fused with reciprocal rank fusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torah_study.index.base import Hit


@dataclass
class Candidate:
    """One ref as seen by both legs, before reranking."""

    ref: str
    rrf: float = 0.0
    keyword_rank: int | None = None
    keyword_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None


def reciprocal_rank_fusion(
    legs: Sequence[tuple[str, Sequence[Hit]]], k: int = 60
) -> list[Candidate]:
    """Fuse ranked lists: each ref scores the sum of 1 / (k + rank) over legs.

    A leg whose name starts with "keyword" is a BM25 list; any other is a
    dense list.

    ``k`` = 60 is the constant of Cormack, Clarke and Buettcher (SIGIR 2009);
    it damps the head of each list so that one leg cannot decide alone.
    """
    candidates: dict[str, Candidate] = {}
    for leg, hits in legs:
        for rank, hit in enumerate(hits, start=1):
            candidate = candidates.setdefault(hit.ref, Candidate(hit.ref))
            candidate.rrf += 1.0 / (k + rank)
            # Several legs of one kind (the whole library and a scoped part)
            # keep the best rank and score either of them gave.
            if leg.startswith("keyword"):
                if candidate.keyword_rank is None or rank < candidate.keyword_rank:
                    candidate.keyword_rank = rank
                candidate.keyword_score = max(candidate.keyword_score or 0.0, hit.score)
            else:
                if candidate.dense_rank is None or rank < candidate.dense_rank:
                    candidate.dense_rank = rank
                candidate.dense_score = max(candidate.dense_score or 0.0, hit.score)
    return sorted(candidates.values(), key=lambda c: c.rrf, reverse=True)
