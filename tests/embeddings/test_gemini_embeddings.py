"""GeminiEmbeddings against a local server that speaks batchEmbedContents."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedding_api import FakeEmbeddingServer, text_vector

from torah_study.embeddings.base import EmbeddingError
from torah_study.embeddings.gemini import GeminiEmbeddings
from torah_study.embeddings.retry import RetryPolicy

API_KEY = "test-key-456"
TEXTS = ["In the beginning", "בראשית ברא אלהים", "Happy is the man", "Avot 1:1", "x"]


def make_embeddings(server: FakeEmbeddingServer, **kwargs: object) -> GeminiEmbeddings:
    return GeminiEmbeddings(API_KEY, base_url=server.base_url, **kwargs)  # type: ignore[arg-type]


def expected_rows(texts: list[str], dimension: int) -> np.ndarray:
    rows = np.array([text_vector(t, dimension) for t in texts], dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / norms, dtype=np.float32)


def test_passages_normalised_in_order(
    gemini_embedding_server: FakeEmbeddingServer,
) -> None:
    embeddings = make_embeddings(gemini_embedding_server, dimension=16)

    vectors = embeddings.embed_passages(TEXTS)

    assert vectors.shape == (5, 16)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, expected_rows(TEXTS, 16), rtol=1e-5, atol=1e-6)
    assert embeddings.name == "gemini:gemini-embedding-001"
    assert embeddings.dimension == 16


def test_request_fields(gemini_embedding_server: FakeEmbeddingServer) -> None:
    embeddings = make_embeddings(
        gemini_embedding_server, model="emb-test", dimension=16
    )

    embeddings.embed_queries(["q1"])
    embeddings.embed_passages(["p1"])

    query, passage = gemini_embedding_server.requests
    assert query.path.endswith("/models/emb-test:batchEmbedContents")
    assert query.headers["x-goog-api-key"] == API_KEY
    assert query.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    assert query.body["requests"][0]["outputDimensionality"] == 16
    assert query.body["requests"][0]["content"]["parts"] == [{"text": "q1"}]
    assert passage.body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


def test_batches_split_by_size(gemini_embedding_server: FakeEmbeddingServer) -> None:
    embeddings = make_embeddings(gemini_embedding_server, dimension=8, batch_size=2)

    vectors = embeddings.embed_queries(TEXTS)

    sizes = [len(r.body["requests"]) for r in gemini_embedding_server.requests]
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(vectors, expected_rows(TEXTS, 8), rtol=1e-5, atol=1e-6)


def test_empty_input_sends_nothing(
    gemini_embedding_server: FakeEmbeddingServer,
) -> None:
    vectors = make_embeddings(gemini_embedding_server, dimension=8).embed_queries([])

    assert vectors.shape == (0, 8)
    assert vectors.dtype == np.float32
    assert gemini_embedding_server.requests == []


def test_server_error_raises(gemini_embedding_server: FakeEmbeddingServer) -> None:
    gemini_embedding_server.script.failures = [500]
    embeddings = make_embeddings(
        gemini_embedding_server, retry=RetryPolicy(max_attempts=1)
    )

    with pytest.raises(EmbeddingError, match="500") as caught:
        embeddings.embed_passages(["a"])

    assert API_KEY not in str(caught.value)


def test_rate_limit_is_retried(gemini_embedding_server: FakeEmbeddingServer) -> None:
    gemini_embedding_server.script.failures = [429]
    embeddings = make_embeddings(
        gemini_embedding_server,
        dimension=8,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
    )

    vectors = embeddings.embed_passages(["a"])

    assert vectors.shape == (1, 8)
    assert len(gemini_embedding_server.requests) == 2


def test_unauthorized_raises(gemini_embedding_server: FakeEmbeddingServer) -> None:
    gemini_embedding_server.script.failures = [401]

    with pytest.raises(EmbeddingError, match="401"):
        make_embeddings(gemini_embedding_server).embed_queries(["a"])

    assert len(gemini_embedding_server.requests) == 1


def test_dimension_mismatch_raises(
    gemini_embedding_server: FakeEmbeddingServer,
) -> None:
    gemini_embedding_server.script.dimension = 7

    with pytest.raises(EmbeddingError, match="returned 7 dimensions, expected 8"):
        make_embeddings(gemini_embedding_server, dimension=8).embed_queries(["a"])


def test_count_mismatch_raises(gemini_embedding_server: FakeEmbeddingServer) -> None:
    gemini_embedding_server.script.drop_last = True

    with pytest.raises(EmbeddingError, match="returned 1 vectors for 2 texts"):
        make_embeddings(gemini_embedding_server, dimension=8).embed_queries(["a", "b"])


def test_invalid_settings_rejected() -> None:
    with pytest.raises(EmbeddingError, match="API key"):
        GeminiEmbeddings("")
    with pytest.raises(EmbeddingError, match="batch_size 101"):
        GeminiEmbeddings(API_KEY, batch_size=101)
