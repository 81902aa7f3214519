"""Embedding providers: the offline default and remote options."""

from __future__ import annotations

from torah_study.config import Settings
from torah_study.embeddings.base import EmbeddingError, Embeddings
from torah_study.embeddings.retry import RateLimiter, RetryPolicy, question_retry
from torah_study.providers.breaker import build_breaker


def build_embeddings(settings: Settings, *, serving: bool = False) -> Embeddings:
    """Return the provider named by ``settings.embedding_provider``.

    With ``serving`` a remote provider embeds questions while a learner
    waits: it retries as ``question_retry`` says and has a circuit breaker.
    Otherwise it retries as long as an embedding run can afford.
    """
    if settings.embedding_provider == "e5":
        from torah_study.embeddings.e5 import E5Embeddings

        return E5Embeddings()
    retry = RetryPolicy(max_attempts=settings.embedding_max_attempts)
    breaker = None
    if serving:
        retry = question_retry(settings)
        breaker = build_breaker(
            f"The {settings.embedding_provider} embedding API", settings
        )
    limiter = RateLimiter(
        settings.embedding_requests_per_minute, settings.embedding_tokens_per_minute
    )
    if settings.embedding_provider == "gemini":
        from torah_study.embeddings.gemini import GeminiEmbeddings

        if settings.gemini_api_key is None:
            raise EmbeddingError("Gemini embeddings need TORAH_STUDY_GEMINI_API_KEY.")
        return GeminiEmbeddings(
            api_key=settings.gemini_api_key.get_secret_value(),
            model=settings.embedding_model or "gemini-embedding-001",
            dimension=settings.embedding_dimension,
            base_url=settings.gemini_base_url,
            retry=retry,
            limiter=limiter,
            timeout_seconds=settings.embedding_timeout_seconds,
            breaker=breaker,
        )
    from torah_study.embeddings.openai_compat import OpenAICompatibleEmbeddings

    if not settings.openai_base_url:
        raise EmbeddingError(
            "OpenAI-compatible embeddings need TORAH_STUDY_OPENAI_BASE_URL."
        )
    key = (
        settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    )
    return OpenAICompatibleEmbeddings(
        base_url=settings.openai_base_url,
        api_key=key,
        model=settings.embedding_model or "text-embedding-3-small",
        dimension=settings.embedding_dimension,
        retry=retry,
        limiter=limiter,
        timeout_seconds=settings.embedding_timeout_seconds,
        breaker=breaker,
    )


__all__ = ["EmbeddingError", "Embeddings", "build_embeddings"]
