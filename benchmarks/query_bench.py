"""Time retrieval per stage, and answers to first token, over an ingested library.

Usage:
    python benchmarks/query_bench.py --data-dir DIR [--backend postgres] \\
        [--questions questions.jsonl] [--model model.gguf] [--output query.json]

Every query runs once as a warm-up, which also loads the embedding model, and
then ``--repeats`` more times. Stage latencies (keyword, dense, fuse, rerank)
come from ``Retrieval.timings`` of the searches that reached the ranking stages.
On the postgres backend the keyword and dense searches run inside the fusion
query, so their time counts as "fuse" and "dense" is the query embedding.
End-to-end latency is the wall time of ``Retriever.retrieve``.

Answer latency runs ``--answer-questions`` questions through the whole
pipeline: always with the sources-only answer, and also with the local GGUF
model when ``--model`` is given. ``first_token`` is the time from the start of
``AnswerPipeline.run`` to the first sentence that passed verification. The
model's own first token is timed separately by wrapping its stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench_common import benchmark_queries, latency_summary, machine_info, write_json

from torah_study.answer.llm import build_answer_model
from torah_study.answer.llm.base import AnswerModel, ChatMessage, ProviderError
from torah_study.answer.pipeline import AnswerPipeline, DoneEvent, ErrorEvent
from torah_study.config import Settings
from torah_study.retrieval.query import analyze, keyword_query
from torah_study.retrieval.rerank import MAX_ON_THE_FLY, ON_THE_FLY_CHARS, passage_text
from torah_study.service import NotIngestedError, Services, build_services

STAGES = ("keyword", "dense", "fuse", "rerank")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="data folder of an ingested library",
    )
    parser.add_argument(
        "--questions",
        type=Path,
        help="JSONL file whose 'question' fields are added before the built-in queries",
    )
    parser.add_argument("--model", type=Path, help="GGUF file for local-model answers")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed passes after the warm-up (default 3)",
    )
    parser.add_argument(
        "--answer-questions",
        type=int,
        default=5,
        help="questions run through the answer pipeline (default 5)",
    )
    parser.add_argument(
        "--backend",
        choices=["lance", "postgres"],
        default="lance",
        help="retrieval store; postgres reads TORAH_STUDY_RETRIEVAL_DATABASE_URL",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON report here")
    return parser.parse_args()


class TimedModel:
    """An answer model wrapper that records when the model yields its first text."""

    def __init__(self, model: AnswerModel) -> None:
        self.model = model
        self.name = model.name
        self.first_piece: float | None = None
        self.pieces = 0

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        self.first_piece = None
        self.pieces = 0
        for piece in self.model.stream(messages, max_tokens=max_tokens):
            if self.first_piece is None:
                self.first_piece = time.perf_counter()
            self.pieces += 1
            yield piece


def time_retrieval(
    services: Services, queries: list[str], repeats: int
) -> dict[str, Any]:
    retriever = services.retriever
    modes: dict[str, str] = {}
    for query in queries:
        modes[query] = retriever.retrieve(query).mode
    print(f"retrieval: warm-up done for {len(queries)} queries", file=sys.stderr)

    stages: dict[str, list[float]] = defaultdict(list)
    end_to_end: dict[str, list[float]] = defaultdict(list)
    for number in range(1, repeats + 1):
        print(f"retrieval: pass {number} of {repeats}", file=sys.stderr)
        for query in queries:
            started = time.perf_counter()
            result = retriever.retrieve(query)
            elapsed = time.perf_counter() - started
            end_to_end["all"].append(elapsed)
            end_to_end[result.mode].append(elapsed)
            if "keyword" in result.timings:
                # Searches that reached ranking, whether the gate passed or abstained.
                end_to_end["ranked"].append(elapsed)
                for stage in STAGES:
                    stages[stage].append(result.timings[stage])
    return {
        "queries": len(queries),
        "repeats": repeats,
        "modes": dict(Counter(modes.values())),
        "mode_per_query": modes,
        "stages": {stage: latency_summary(stages[stage]) for stage in STAGES},
        "end_to_end": {
            name: latency_summary(values) for name, values in sorted(end_to_end.items())
        },
    }


def time_on_the_fly_embedding(
    services: Services, queries: list[str], repeats: int
) -> dict[str, Any]:
    """Time the part of rerank that embeds candidates without stored vectors.

    For each query, the first MAX_ON_THE_FLY keyword hits that have no stored
    vector are embedded as the offline reranker embeds them.
    """
    store = services.store
    batches: list[list[str]] = []
    for query in queries:
        terms = keyword_query(analyze(query, services.catalog).terms)
        refs = [hit.ref for hit in store.keyword(terms, services.settings.keyword_k)]
        stored = store.vectors_for(refs)
        missing = [record for record in store.get(refs) if record.ref not in stored]
        texts = [passage_text(r)[:ON_THE_FLY_CHARS] for r in missing[:MAX_ON_THE_FLY]]
        if texts:
            batches.append(texts)
    seconds: list[float] = []
    for _ in range(repeats):
        for texts in batches:
            started = time.perf_counter()
            services.embeddings.embed_passages(texts)
            seconds.append(time.perf_counter() - started)
    return {
        "batches": len(batches),
        "passages_per_batch_max": MAX_ON_THE_FLY,
        "seconds": latency_summary(seconds),
    }


def run_answer(pipeline: AnswerPipeline, question: str) -> dict[str, Any]:
    """Run one question through the pipeline and return its timings and outcome."""
    done: DoneEvent | None = None
    for event in pipeline.run(question):
        if isinstance(event, ErrorEvent):
            raise RuntimeError(f"pipeline failed on {question!r}: {event.message}")
        if isinstance(event, DoneEvent):
            done = event
    if done is None:
        raise RuntimeError(f"pipeline ended without a done event on {question!r}")
    return {
        "question": question,
        "provider": done.provider,
        "mode": done.mode,
        "answer_chars": len(done.answer),
        "answer": done.answer,
        "first_token_s": done.timings.get("first_token"),
        "total_s": done.timings["total"],
    }


def time_sources_only(
    services: Services, questions: list[str], repeats: int
) -> dict[str, Any]:
    pipeline = AnswerPipeline(
        services.retriever, services.catalog, None, services.settings.llm_max_tokens
    )
    for question in questions:
        run_answer(pipeline, question)
    runs = [run_answer(pipeline, q) for _ in range(repeats) for q in questions]
    return {
        "questions": questions,
        "runs": len(runs),
        "first_token": latency_summary(
            [r["first_token_s"] for r in runs if r["first_token_s"] is not None]
        ),
        "total": latency_summary([r["total_s"] for r in runs]),
    }


def time_local_model(
    services: Services, questions: list[str], model_path: Path
) -> dict[str, Any]:
    settings = services.settings.model_copy(
        update={"llm_provider": "local", "llm_model_path": model_path}
    )
    model = build_answer_model(settings)
    if model is None:
        raise ProviderError(f"no local model was built from {model_path}")
    started = time.perf_counter()
    model.warm()  # type: ignore[attr-defined]
    warm_seconds = time.perf_counter() - started

    timed = TimedModel(model)
    pipeline = AnswerPipeline(
        services.retriever, services.catalog, timed, settings.llm_max_tokens
    )
    runs: list[dict[str, Any]] = []
    for question in questions:
        started = time.perf_counter()
        outcome = run_answer(pipeline, question)
        if timed.first_piece is not None:
            outcome["model_first_token_s"] = timed.first_piece - started
        outcome["model_pieces"] = timed.pieces
        runs.append(outcome)
        print(
            f"local model: {outcome['total_s']:.1f}s for {question!r}",
            file=sys.stderr,
        )
    return {
        "model": str(model_path),
        "threads": settings.llm_threads,
        "context": settings.llm_context,
        "max_tokens": settings.llm_max_tokens,
        "load_and_first_token_s": round(warm_seconds, 2),
        "first_verified_sentence": latency_summary(
            [r["first_token_s"] for r in runs if r["first_token_s"] is not None]
        ),
        "model_first_token": latency_summary(
            [r["model_first_token_s"] for r in runs if "model_first_token_s" in r]
        ),
        "total": latency_summary([r["total_s"] for r in runs]),
        "runs": runs,
    }


def main() -> int:
    args = parse_args()
    if args.repeats < 1:
        sys.exit("error: --repeats must be at least 1.")
    if args.model is not None and not args.model.is_file():
        sys.exit(f"error: model file not found: {args.model}")
    settings = Settings(
        data_dir=args.data_dir, llm_provider="sources", retrieval_backend=args.backend
    )
    try:
        services = build_services(settings, model=None)
    except (NotIngestedError, ValueError) as error:
        sys.exit(f"error: {error}")
    queries = benchmark_queries(args.questions)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "data_dir": str(args.data_dir),
        "backend": args.backend,
        "segments": services.store.count(),
        "vectors": services.store.vector_count(),
    }
    result["retrieval"] = time_retrieval(services, queries, args.repeats)
    result["rerank_on_the_fly_embedding"] = time_on_the_fly_embedding(
        services, queries, args.repeats
    )

    # Answer timing uses questions that retrieval answers from passages, so the
    # model is actually called.
    modes = result["retrieval"]["mode_per_query"]
    answerable = [q for q in queries if modes[q] == "search"]
    answer_questions = answerable[: args.answer_questions]
    result["sources_only"] = time_sources_only(services, answer_questions, args.repeats)
    if args.model is not None:
        result["local_model"] = time_local_model(services, answer_questions, args.model)
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
