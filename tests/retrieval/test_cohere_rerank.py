"""Cohere rerank through the real client, against a local server on 127.0.0.1.

Cohere is a paid remote API, so the test stands in for it at the HTTP
boundary: a small server that speaks the ``/v2/rerank`` wire format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from torah_study.index.base import SegmentRecord
from torah_study.retrieval.hybrid import Candidate
from torah_study.retrieval.query import QueryAnalysis
from torah_study.retrieval.rerank import COHERE_MAX_DOCUMENTS, CohereReranker

REQUESTS: list[dict[str, Any]] = []


class RerankHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        REQUESTS.append(
            {"path": self.path, "body": body, "auth": self.headers["Authorization"]}
        )
        # Score each document by whether it mentions "neighbour", so the
        # second document must come first.
        results = [
            {"index": i, "relevance_score": 0.9 if "neighbour" in doc else 0.1}
            for i, doc in enumerate(body["documents"])
        ]
        results.sort(key=lambda r: r["relevance_score"], reverse=True)
        payload = json.dumps({"id": "r1", "results": results, "meta": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RerankHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _record(ref: str, en: str) -> SegmentRecord:
    return SegmentRecord(ref=ref, book=ref.rsplit(" ", 1)[0], pos="", en=en)


def _placeholders(count: int) -> list[tuple[Candidate, SegmentRecord]]:
    """Return placeholder candidates, for tests where only their number matters."""
    return [
        (Candidate(f"Placeholder {n}"), _record(f"Placeholder {n}", f"record {n}"))
        for n in range(1, count + 1)
    ]


def test_cohere_rerank_orders_by_score(base_url: str) -> None:
    REQUESTS.clear()
    reranker = CohereReranker("test-key", "rerank-v3.5", base_url=base_url)
    candidates = [
        (Candidate("Pirkei Avot 1:12"), _record("Pirkei Avot 1:12", "Love peace.")),
        (
            Candidate("Leviticus 19:18"),
            _record("Leviticus 19:18", "thou shalt love thy neighbour as thyself"),
        ),
    ]
    analysis = QueryAnalysis(text="love your neighbor", language="en", terms=["love"])

    scored = reranker.rerank(analysis, None, candidates, {})

    assert [s.record.ref for s in scored] == ["Leviticus 19:18", "Pirkei Avot 1:12"]
    assert scored[0].score == pytest.approx(0.9)
    (request,) = REQUESTS
    assert request["path"] == "/v2/rerank"
    assert request["body"]["query"] == "love your neighbor"
    assert request["body"]["model"] == "rerank-v3.5"
    assert request["auth"] == "Bearer test-key"


def test_cohere_rerank_caps_documents(base_url: str) -> None:
    REQUESTS.clear()
    reranker = CohereReranker("test-key", "rerank-v3.5", base_url=base_url)
    candidates = _placeholders(150)
    analysis = QueryAnalysis(text="creation", language="en", terms=["creation"])

    scored = reranker.rerank(analysis, None, candidates, {})

    (request,) = REQUESTS
    assert len(request["body"]["documents"]) == COHERE_MAX_DOCUMENTS
    assert len(scored) == COHERE_MAX_DOCUMENTS
    assert "Placeholder 150" not in {s.record.ref for s in scored}


def test_cohere_rerank_sends_named_work_first(base_url: str) -> None:
    REQUESTS.clear()
    reranker = CohereReranker("test-key", "rerank-v3.5", base_url=base_url)
    # A named commentator's comments are added after the fused candidates.
    fused = _placeholders(150)
    comment = _record("Rashi on Genesis 1:1:1", "a comment")
    candidates = [*fused, (Candidate(comment.ref), comment)]
    analysis = QueryAnalysis(
        text="How does Rashi explain the first verse?",
        language="en",
        terms=["rashi"],
        commentators=["Rashi"],
    )

    scored = reranker.rerank(analysis, None, candidates, {})

    (request,) = REQUESTS
    assert request["body"]["documents"][0].startswith("Rashi on Genesis 1:1:1")
    assert "Rashi on Genesis 1:1:1" in {s.record.ref for s in scored}
    assert len(scored) == COHERE_MAX_DOCUMENTS
