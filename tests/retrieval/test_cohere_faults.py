"""Cohere rerank faults, with the real client pointed at a FaultServer.

Retries and the breaker are checked on the reranker alone; the fallback to
the offline scorer is checked through the Retriever on the test library.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fault_server import Fault, FaultServer, RecordedRequest, fault_server, json_fault
from torah_study.embeddings.retry import RetryPolicy
from torah_study.index.base import SegmentRecord
from torah_study.providers.breaker import CircuitBreaker
from torah_study.retrieval.hybrid import Candidate
from torah_study.retrieval.query import QueryAnalysis
from torah_study.retrieval.rerank import CohereReranker, RerankError
from torah_study.retrieval.retriever import Retriever

RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
ANALYSIS = QueryAnalysis(text="love your neighbor", language="en", terms=["love"])


def rerank_answer(request: RecordedRequest) -> Fault:
    """Score the documents in reverse order of sending."""
    count = len(request.body["documents"])
    results = [
        {"index": i, "relevance_score": (i + 1) / count} for i in reversed(range(count))
    ]
    return json_fault(200, {"id": "r1", "results": results, "meta": {}})


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server(rerank_answer) as running:
        yield running


def _candidates() -> list[tuple[Candidate, SegmentRecord]]:
    refs = ["Genesis 1:1", "Leviticus 19:18"]
    return [
        (Candidate(ref), SegmentRecord(ref=ref, book=ref.split()[0], pos="", en=ref))
        for ref in refs
    ]


def _reranker(server: FaultServer, **kwargs: object) -> CohereReranker:
    return CohereReranker(
        "test-key",
        "rerank-v3.5",
        base_url=server.base_url,
        retry=RETRY,
        timeout_seconds=0.3,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "fault",
    [
        json_fault(503, {"message": "unavailable"}),
        json_fault(429, {"message": "slow down"}, **{"Retry-After": "0.05"}),
        Fault(delay=1.0),
        Fault(disconnect=True),
    ],
    ids=["unavailable", "rate_limited", "read_timeout", "disconnect"],
)
def test_transient_faults_are_retried(server: FaultServer, fault: Fault) -> None:
    server.script = [fault]
    scored = _reranker(server).rerank(ANALYSIS, None, _candidates(), {})
    assert [s.record.ref for s in scored] == ["Leviticus 19:18", "Genesis 1:1"]
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (json_fault(500, {"message": "down"}), "after 3 attempts: HTTP 500"),
        (Fault(body=b"{not json"), "invalid response"),
        (json_fault(200, {"unexpected": True}), "no result list"),
        (json_fault(200, {"results": [{"index": 7, "relevance_score": 1}]}), "index"),
        (json_fault(401, {"message": "invalid api token"}), "HTTP 401"),
    ],
    ids=["server_error", "invalid_json", "wrong_shape", "bad_index", "unauthorized"],
)
def test_failures_raise_rerank_error(
    server: FaultServer, fault: Fault, message: str
) -> None:
    server.script = [fault] * 3
    with pytest.raises(RerankError, match=message):
        _reranker(server).rerank(ANALYSIS, None, _candidates(), {})


def test_open_breaker_sends_nothing(server: FaultServer) -> None:
    breaker = CircuitBreaker("Cohere rerank", failures=3, cooldown=60.0)
    reranker = _reranker(server, breaker=breaker)
    server.script = [json_fault(500, {"message": "down"})] * 3
    with pytest.raises(RerankError, match="HTTP 500"):
        reranker.rerank(ANALYSIS, None, _candidates(), {})
    with pytest.raises(RerankError, match="not sent"):
        reranker.rerank(ANALYSIS, None, _candidates(), {})
    assert len(server.requests) == 3


@pytest.mark.corpus
@pytest.mark.slow
def test_retriever_falls_back_to_offline_scores(services, server: FaultServer) -> None:  # type: ignore[no-untyped-def]
    server.script = [json_fault(500, {"message": "down"})] * 3
    retriever = services.retriever
    cohere = Retriever(
        retriever.store,
        retriever.catalog,
        retriever.embeddings,
        _reranker(server),
        retriever.settings,
        lexicon=retriever.lexicon,
    )
    question = "Where does the Torah say to love your neighbor as yourself?"
    degraded = cohere.retrieve(question)
    offline = retriever.retrieve(question)
    assert degraded.mode == "search"
    assert len(degraded.degraded) == 1
    assert degraded.degraded[0].startswith("rerank: Cohere rerank")
    assert [p.record.ref for p in degraded.passages] == [
        p.record.ref for p in offline.passages
    ]
    assert offline.degraded == []
