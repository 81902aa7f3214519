"""Answer model for any server that speaks the OpenAI chat completions API.

This covers OpenAI itself and self-hosted servers such as vLLM, llama.cpp's
``llama-server`` and Ollama, which usually need no API key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage
from torah_study.answer.llm.streaming import retrying_stream
from torah_study.embeddings.retry import (
    QUESTION_RETRY,
    Failure,
    RetryPolicy,
    parse_retry_after,
)
from torah_study.providers.breaker import CircuitBreaker

# Sent when no key is configured, because the client rejects an empty key even for
# servers that do not check it.
PLACEHOLDER_API_KEY = "not-needed"


def make_openai_client(
    base_url: str,
    api_key: str | None = None,
    *,
    max_retries: int = 2,
    timeout_seconds: float = 120.0,
) -> openai.OpenAI:
    """Build a client that retries connection errors and 408, 409, 429 and 5xx.

    The retry rules are those of openai-python's ``_should_retry`` (3.x), which
    waits 0.5 s to 8 s between attempts. The providers of this package pass
    ``max_retries=0`` and retry with ``call_with_retries`` instead.
    """
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or PLACEHOLDER_API_KEY,
        max_retries=max_retries,
        timeout=timeout_seconds,
    )


def describe_openai_error(error: openai.OpenAIError) -> str:
    """Format a client error as one line without the request and its API key."""
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def classify_openai_error(error: Exception) -> Failure | None:
    """Retry timeouts, lost connections, 408, 409, 429 and 5xx; nothing else.

    These are the statuses openai-python 1.x retries itself (``_should_retry``).
    """
    if not isinstance(error, openai.OpenAIError):
        return None
    description = describe_openai_error(error)
    if isinstance(error, openai.APIConnectionError):
        # APITimeoutError is a subclass of APIConnectionError.
        return Failure(True, None, description)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        retryable = status in (408, 409, 429) or status >= 500
        retry_after = parse_retry_after(error.response.headers.get("retry-after"))
        return Failure(retryable, retry_after, description, rejected=not retryable)
    return Failure(False, None, description)


def classify_stream_error(error: Exception) -> Failure | None:
    """Classify a client error, or a chunk of a stream that cannot be parsed.

    openai-python raises ``json.JSONDecodeError`` (a ValueError) for an event
    whose data is not JSON. Such a response is not retried.
    """
    if isinstance(error, ValueError):
        return Failure(False, None, f"invalid response: {error}")
    return classify_openai_error(error)


class OpenAICompatibleModel:
    """Streams answers from an OpenAI-compatible chat endpoint at temperature 0."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        retry: RetryPolicy = QUESTION_RETRY,
        breaker: CircuitBreaker | None = None,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create the client. No request is sent before the first ``stream`` call.

        Retries follow ``retry`` (the client's own retries are off) until the
        first text piece, ``breaker`` fails calls fast while the server is
        down, and ``sleep`` replaces ``time.sleep`` between retries, for tests.
        ``timeout_seconds`` bounds the connection and each read.
        """
        if not base_url:
            raise ProviderError(
                "Missing OpenAI-compatible base URL. Set TORAH_STUDY_OPENAI_BASE_URL "
                "(for example http://127.0.0.1:8080/v1)."
            )
        if not model:
            raise ProviderError(
                "Missing model name for the OpenAI-compatible provider. "
                "Set TORAH_STUDY_LLM_MODEL."
            )
        self.name = f"openai:{model}"
        self._model = model
        self._retry = retry
        self._breaker = breaker
        self._sleep = sleep
        self._client = make_openai_client(
            base_url, api_key, max_retries=0, timeout_seconds=timeout_seconds
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield answer text as the server streams it, or raise ProviderError."""
        return retrying_stream(
            lambda: self._pieces(messages, max_tokens),
            classify_stream_error,
            self._retry,
            operation=f"OpenAI-compatible model {self._model}",
            breaker=self._breaker,
            sleep=self._sleep,
        )

    def _pieces(
        self, messages: Sequence[ChatMessage], max_tokens: int
    ) -> Iterator[str | Usage]:
        chunks = self._client.chat.completions.create(
            model=self._model,
            messages=[_to_openai_message(m) for m in messages],
            stream=True,
            temperature=0,
            # NOTE: OpenAI's newest models want max_completion_tokens, but
            # self-hosted servers (vLLM, llama-server, Ollama) read max_tokens.
            max_tokens=max_tokens,
        )
        try:
            # TODO: ask for usage (stream_options include_usage) where the
            # server supports it; now only servers that send it anyway count.
            usage: Usage | None = None
            produced_text = False
            finish_reason: str | None = None
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = Usage(
                        chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                    )
                # Some servers send a final chunk with usage and no choices.
                if not chunk.choices:
                    continue
                finish_reason = chunk.choices[0].finish_reason or finish_reason
                text = chunk.choices[0].delta.content
                if text:
                    produced_text = True
                    yield text
            if not produced_text:
                # Also the outcome of a body that is not a stream of chunks
                # (invalid JSON, or JSON without "choices").
                raise ProviderError(
                    f"OpenAI-compatible model {self._model} returned no text "
                    f"(finish reason: {finish_reason or 'none given'})."
                )
            if finish_reason is None:
                # A server closes a finished stream only after a chunk with a
                # finish reason, so an end without one is a broken connection.
                raise ProviderError(
                    f"The answer stream of {self._model} ended before the model "
                    "finished (no finish reason)."
                )
            if usage is not None:
                yield usage
        finally:
            chunks.close()


def _to_openai_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(
            role="assistant", content=message.content
        )
    return ChatCompletionUserMessageParam(role="user", content=message.content)
