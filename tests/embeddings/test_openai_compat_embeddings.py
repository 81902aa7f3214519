"""OpenAICompatibleEmbeddings against a local server that speaks /v1/embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedding_api import FakeEmbeddingServer, text_vector

from torah_study.embeddings.base import EmbeddingError
from torah_study.embeddings.openai_compat import OpenAICompatibleEmbeddings
from torah_study.embeddings.retry import RetryPolicy

TEXTS = ["In the beginning", "בראשית ברא אלהים", "Happy is the man", "Avot 1:1", "x"]


def make_embeddings(
    server: FakeEmbeddingServer, dimension: int = 8, **kwargs: object
) -> OpenAICompatibleEmbeddings:
    return OpenAICompatibleEmbeddings(
        f"{server.base_url}/v1",
        "emb-model",
        dimension,
        **kwargs,  # type: ignore[arg-type]
    )


def expected_rows(texts: list[str], dimension: int) -> np.ndarray:
    rows = np.array([text_vector(t, dimension) for t in texts], dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / norms, dtype=np.float32)


@pytest.mark.parametrize("ignore_encoding_format", [False, True])
def test_vectors_normalised_in_order(
    openai_embedding_server: FakeEmbeddingServer, ignore_encoding_format: bool
) -> None:
    """Both base64 (the client's default) and plain float responses decode."""
    openai_embedding_server.script.ignore_encoding_format = ignore_encoding_format

    vectors = make_embeddings(openai_embedding_server).embed_passages(TEXTS)

    assert vectors.shape == (5, 8)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, expected_rows(TEXTS, 8), rtol=1e-5, atol=1e-6)


def test_reordered_response_sorted_by_index(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    openai_embedding_server.script.reverse_order = True

    vectors = make_embeddings(openai_embedding_server).embed_queries(TEXTS)

    np.testing.assert_allclose(vectors, expected_rows(TEXTS, 8), rtol=1e-5, atol=1e-6)


def test_prefixes_and_request_fields(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    embeddings = make_embeddings(
        openai_embedding_server,
        api_key="sk-test",
        query_prefix="query: ",
        passage_prefix="passage: ",
    )

    queries = embeddings.embed_queries(["who"])
    passages = embeddings.embed_passages(["text"])

    query, passage = openai_embedding_server.requests
    assert query.path == "/v1/embeddings"
    assert query.headers["authorization"] == "Bearer sk-test"
    assert query.body["model"] == "emb-model"
    assert query.body["input"] == ["query: who"]
    assert "dimensions" not in query.body
    assert passage.body["input"] == ["passage: text"]
    np.testing.assert_allclose(queries, expected_rows(["query: who"], 8), rtol=1e-5)
    np.testing.assert_allclose(passages, expected_rows(["passage: text"], 8), rtol=1e-5)
    assert embeddings.name == "openai:emb-model"


def test_dimensions_sent_when_requested(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    embeddings = make_embeddings(
        openai_embedding_server, dimension=32, request_dimensions=True
    )

    vectors = embeddings.embed_queries(["a"])

    assert openai_embedding_server.requests[0].body["dimensions"] == 32
    assert vectors.shape == (1, 32)


def test_batches_split_by_size(openai_embedding_server: FakeEmbeddingServer) -> None:
    embeddings = make_embeddings(openai_embedding_server, batch_size=2)

    vectors = embeddings.embed_passages(TEXTS)

    sizes = [len(r.body["input"]) for r in openai_embedding_server.requests]
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(vectors, expected_rows(TEXTS, 8), rtol=1e-5, atol=1e-6)


def test_empty_input_sends_nothing(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    vectors = make_embeddings(openai_embedding_server).embed_queries([])

    assert vectors.shape == (0, 8)
    assert openai_embedding_server.requests == []


def test_server_error_raises(openai_embedding_server: FakeEmbeddingServer) -> None:
    openai_embedding_server.script.failures = [500]
    embeddings = make_embeddings(
        openai_embedding_server, retry=RetryPolicy(max_attempts=1)
    )

    with pytest.raises(EmbeddingError, match="HTTP 500"):
        embeddings.embed_passages(["a"])


def test_unavailable_is_retried(openai_embedding_server: FakeEmbeddingServer) -> None:
    openai_embedding_server.script.failures = [503]
    embeddings = make_embeddings(
        openai_embedding_server, retry=RetryPolicy(max_attempts=2, base_delay=0.01)
    )

    vectors = embeddings.embed_passages(["a"])

    assert vectors.shape == (1, 8)
    assert len(openai_embedding_server.requests) == 2


def test_unauthorized_raises(openai_embedding_server: FakeEmbeddingServer) -> None:
    openai_embedding_server.script.failures = [401]

    embeddings = make_embeddings(openai_embedding_server, api_key="sk-secret")

    with pytest.raises(EmbeddingError, match="HTTP 401") as caught:
        embeddings.embed_queries(["a"])

    assert "sk-secret" not in str(caught.value)

    assert len(openai_embedding_server.requests) == 1


def test_dimension_mismatch_raises(
    openai_embedding_server: FakeEmbeddingServer,
) -> None:
    openai_embedding_server.script.default_dimension = 5

    with pytest.raises(EmbeddingError, match="returned 5 dimensions, expected 8"):
        make_embeddings(openai_embedding_server).embed_queries(["a"])


def test_count_mismatch_raises(openai_embedding_server: FakeEmbeddingServer) -> None:
    openai_embedding_server.script.drop_last = True

    with pytest.raises(EmbeddingError, match="returned 1 vectors for 2 texts"):
        make_embeddings(openai_embedding_server).embed_queries(["a", "b"])


def test_invalid_settings_rejected() -> None:
    with pytest.raises(EmbeddingError, match="TORAH_STUDY_OPENAI_BASE_URL"):
        OpenAICompatibleEmbeddings("", "m", 8)
    with pytest.raises(EmbeddingError, match="TORAH_STUDY_EMBEDDING_MODEL"):
        OpenAICompatibleEmbeddings("http://127.0.0.1:1/v1", "", 8)
    with pytest.raises(EmbeddingError, match="Invalid dimension 0"):
        OpenAICompatibleEmbeddings("http://127.0.0.1:1/v1", "m", 0)
