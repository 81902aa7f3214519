"""Retrieval and behaviour metrics over a JSONL question set.

Each line has ``id``, ``kind`` (answerable, lookup, unanswerable, halakhic,
invalid_ref), ``question`` and ``gold_refs``. A retrieved ref hits a gold ref
when one contains the other, so "Genesis 22:5" hits "Genesis 22:1-19" and
"Rashi on Genesis 1:5:1" hits "Rashi on Genesis 1:5".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torah_study.answer.pipeline import DoneEvent, SourcesEvent, VerificationEvent
from torah_study.answer.prompts import RABBI
from torah_study.library.catalog import Catalog
from torah_study.library.refs import Ref, RefError
from torah_study.service import Services

KINDS = ("answerable", "lookup", "unanswerable", "halakhic", "invalid_ref")


class EvalFileError(ValueError):
    """Raised for a question file line that is not valid."""


@dataclass
class Question:
    id: str
    kind: str
    question: str
    gold_refs: list[str]
    lang: str = ""


@dataclass
class Outcome:
    question: Question
    refs: list[str]
    mode: str
    answer: str
    first_hit: int | None
    recall: float | None
    correct: bool
    verification_passed: bool
    seconds: float


@dataclass
class EvalReport:
    k: int
    outcomes: list[Outcome] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        ranked = [
            o for o in self.outcomes if o.question.kind in ("answerable", "lookup")
        ]
        refusals = [o for o in self.outcomes if o.question.kind == "unanswerable"]
        answerable = [o for o in self.outcomes if o.question.kind == "answerable"]
        by_kind: dict[str, list[Outcome]] = {}
        for outcome in self.outcomes:
            by_kind.setdefault(outcome.question.kind, []).append(outcome)
        seconds = sorted(o.seconds for o in self.outcomes)
        return {
            "questions": len(self.outcomes),
            f"recall@{self.k}": _mean([o.recall or 0.0 for o in ranked]),
            f"hit@{self.k}": _mean([1.0 if o.first_hit else 0.0 for o in ranked]),
            "mrr": _mean([1.0 / o.first_hit if o.first_hit else 0.0 for o in ranked]),
            "abstention_correct": _mean([1.0 if o.correct else 0.0 for o in refusals]),
            "false_abstention": _mean(
                [1.0 if o.mode == "abstain" else 0.0 for o in answerable]
            ),
            "correct_by_kind": {
                kind: f"{sum(o.correct for o in items)}/{len(items)}"
                for kind, items in sorted(by_kind.items())
            },
            "verification_passed": _mean(
                [1.0 if o.verification_passed else 0.0 for o in self.outcomes]
            ),
            "seconds_p50": seconds[len(seconds) // 2] if seconds else 0.0,
        }


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def load_questions(path: Path) -> list[Question]:
    questions: list[Question] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise EvalFileError(f"{path}: not a UTF-8 text file ({error})") from error
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            question = Question(
                id=str(data["id"]),
                kind=str(data["kind"]),
                question=str(data["question"]),
                gold_refs=[str(r) for r in data.get("gold_refs", [])],
                lang=str(data.get("lang", "")),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise EvalFileError(
                f"{path}:{number}: invalid question line ({error})"
            ) from error
        if not isinstance(data.get("gold_refs", []), list):
            raise EvalFileError(f"{path}:{number}: gold_refs must be a list of refs")
        if not isinstance(data["question"], str) or not data["question"].strip():
            raise EvalFileError(f"{path}:{number}: question must be non-empty text")
        if question.kind not in KINDS:
            raise EvalFileError(
                f"{path}:{number}: unknown kind {question.kind!r}; "
                f"expected one of {KINDS}"
            )
        questions.append(question)
    if not questions:
        raise EvalFileError(f"{path}: no questions found")
    return questions


def _parse(catalog: Catalog, ref: str) -> Ref | None:
    try:
        return catalog.parse(ref, validate=False)
    except RefError:
        return None


def first_hit(
    catalog: Catalog, retrieved: list[str], gold: list[str]
) -> tuple[int | None, float]:
    """Return the 1-based rank of the first hit and the share of gold refs hit."""
    gold_refs = [g for g in (_parse(catalog, r) for r in gold) if g]
    got = [_parse(catalog, r) for r in retrieved]
    first: int | None = None
    hit_gold: set[int] = set()
    for rank, ref in enumerate(got, start=1):
        if ref is None:
            continue
        for index, target in enumerate(gold_refs):
            if target.contains(ref) or ref.contains(target):
                hit_gold.add(index)
                first = first or rank
    recall = len(hit_gold) / len(gold_refs) if gold_refs else 0.0
    return first, recall


def evaluate(
    services: Services, questions: Iterable[Question], k: int = 5
) -> EvalReport:
    """Run every question through the full pipeline and score the outcome."""
    import time

    report = EvalReport(k=k)
    for question in questions:
        started = time.perf_counter()
        refs: list[str] = []
        mode, answer, passed = "", "", False
        for event in services.pipeline.run(question.question):
            if isinstance(event, SourcesEvent):
                refs = [s["ref"] for s in event.sources][:k]
                mode = event.mode
            elif isinstance(event, VerificationEvent):
                passed = bool(event.report.get("passed"))
            elif isinstance(event, DoneEvent):
                answer = event.answer
        hit, recall = first_hit(services.catalog, refs, question.gold_refs)
        correct = _judge(question, mode, refs, answer, hit)
        report.outcomes.append(
            Outcome(
                question,
                refs,
                mode,
                answer,
                hit,
                recall if question.gold_refs else None,
                correct,
                passed,
                time.perf_counter() - started,
            )
        )
    return report


def _judge(
    question: Question, mode: str, refs: list[str], answer: str, hit: int | None
) -> bool:
    if question.kind in ("answerable", "lookup"):
        return hit is not None
    if question.kind == "unanswerable":
        return mode == "abstain" and not refs
    if question.kind == "invalid_ref":
        return mode == "invalid_ref" and not refs
    # Halakhic: no ruling, and the learner is sent to a rabbi.
    return any(text in answer for text in RABBI.values()) or mode == "abstain"
