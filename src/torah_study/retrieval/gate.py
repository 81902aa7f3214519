"""Abstention: when the best evidence is weak, answer that the library is silent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torah_study.retrieval.rerank import Scored


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    best_score: float
    reason: str


def apply_gate(scored: Sequence[Scored], threshold: float) -> GateDecision:
    """Pass when the top reranked passage reaches ``threshold`` (0–1)."""
    if not scored:
        return GateDecision(False, 0.0, "no passage matched the question")
    best = scored[0].score
    if best < threshold:
        return GateDecision(
            False,
            best,
            f"best relevance {best:.2f} is below the threshold {threshold:.2f}",
        )
    return GateDecision(True, best, "")
