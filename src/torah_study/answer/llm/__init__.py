"""Answer models: a local GGUF model, Gemini, or any OpenAI-compatible server.

Provider modules are imported on demand, because google-genai, openai and
llama_cpp each take noticeable time to import.
"""

from __future__ import annotations

import logging

from torah_study.answer.llm.base import AnswerModel, ChatMessage, ProviderError
from torah_study.answer.llm.weights import DEFAULT_MODEL, model_path
from torah_study.config import Settings
from torah_study.embeddings.retry import question_retry
from torah_study.providers.breaker import build_breaker

__all__ = ["AnswerModel", "ChatMessage", "ProviderError", "build_answer_model"]

logger = logging.getLogger(__name__)


def build_answer_model(settings: Settings) -> AnswerModel | None:
    """Create the answer model that ``settings.llm_provider`` selects.

    Returns None for "sources", and for "auto" when no local model can run. The
    pipeline then answers with the retrieved sources only. Raises ProviderError when
    an explicitly chosen provider is missing its package, weights, key or URL.
    """
    provider = settings.llm_provider
    if provider == "sources":
        return None
    if provider == "local":
        return _build_local(settings)
    if provider == "gemini":
        return _build_gemini(settings)
    if provider == "openai":
        return _build_openai(settings)
    if provider == "auto":
        try:
            return _build_local(settings)
        except ProviderError as error:
            logger.warning(
                "No local answer model, answering with sources only: %s", error
            )
            return None
    raise ProviderError(f"Unknown llm_provider {provider!r}.")


def _build_local(settings: Settings) -> AnswerModel:
    from torah_study.answer.llm.local import LocalModel

    path = settings.llm_model_path or model_path(DEFAULT_MODEL, settings.models_dir)
    return LocalModel(path, n_ctx=settings.llm_context, n_threads=settings.llm_threads)


def _build_gemini(settings: Settings) -> AnswerModel:
    from torah_study.answer.llm.gemini import DEFAULT_GEMINI_MODEL, GeminiModel

    if settings.gemini_api_key is None:
        raise ProviderError(
            "llm_provider is 'gemini' but the API key is missing. "
            "Set TORAH_STUDY_GEMINI_API_KEY."
        )
    return GeminiModel(
        settings.gemini_api_key.get_secret_value(),
        model=settings.llm_model or DEFAULT_GEMINI_MODEL,
        base_url=settings.gemini_base_url,
        retry=question_retry(settings),
        breaker=build_breaker("The Gemini answer model", settings),
    )


def _build_openai(settings: Settings) -> AnswerModel:
    from torah_study.answer.llm.openai_compat import OpenAICompatibleModel

    if not settings.openai_base_url:
        raise ProviderError(
            "llm_provider is 'openai' but the base URL is missing. "
            "Set TORAH_STUDY_OPENAI_BASE_URL (for example http://127.0.0.1:8080/v1)."
        )
    api_key = settings.openai_api_key
    return OpenAICompatibleModel(
        settings.openai_base_url,
        settings.llm_model,
        api_key.get_secret_value() if api_key is not None else None,
        retry=question_retry(settings),
        breaker=build_breaker("The OpenAI-compatible answer model", settings),
    )
