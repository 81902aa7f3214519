"""Answer model backed by the Gemini API through the ``google-genai`` client."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
from google import genai
from google.genai import errors, types

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage
from torah_study.answer.llm.streaming import retrying_stream
from torah_study.embeddings.retry import (
    QUESTION_RETRY,
    Failure,
    RetryPolicy,
    parse_retry_after,
)
from torah_study.providers.breaker import CircuitBreaker

DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"

# Status codes that the client retries, with exponential backoff starting at 1 s.
# google-genai 3.6 does not read Retry-After, so the providers of this package
# pass max_attempts=1 and retry with call_with_retries instead.
_RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]


def make_gemini_client(
    api_key: str,
    *,
    base_url: str | None = None,
    max_attempts: int = 3,
    timeout_seconds: float = 120.0,
) -> genai.Client:
    """Build a client with retries on rate limits and server errors.

    ``base_url`` replaces the public endpoint, for a proxy or a local test server.
    """
    http_options = types.HttpOptions(
        base_url=base_url,
        timeout=int(timeout_seconds * 1000),
        retry_options=types.HttpRetryOptions(
            attempts=max_attempts, http_status_codes=_RETRY_STATUS_CODES
        ),
    )
    return genai.Client(api_key=api_key, http_options=http_options)


def describe_gemini_error(error: Exception) -> str:
    """Format a client error as one line without the request headers and API key."""
    if isinstance(error, errors.APIError):
        return f"HTTP {error.code} {error.status or ''}: {error.message or ''}".strip()
    return f"{type(error).__name__}: {error}"


def _transport_errors() -> tuple[type[Exception], ...]:
    """Collect the transport error bases of httpx and httpx2.

    google-genai 3.x sends requests with httpx2, a fork of httpx under another
    import name whose exceptions do not subclass httpx's. Earlier versions use
    httpx, so both are caught when installed.
    """
    found: list[type[Exception]] = [httpx.HTTPError]
    try:
        httpx2 = importlib.import_module("httpx2")
    except ImportError:
        return tuple(found)
    found.append(httpx2.HTTPError)
    return tuple(found)


# Errors that the client raises for HTTP failures, transport failures and
# responses it cannot parse.
GEMINI_ERRORS: tuple[type[Exception], ...] = (
    errors.APIError,
    errors.UnknownApiResponseError,
    *_transport_errors(),
)


def classify_gemini_error(error: Exception) -> Failure | None:
    """Retry transport errors and timeouts, 408, 429 and 5xx; nothing else.

    A response that cannot be parsed (invalid JSON, or JSON of another shape,
    which pydantic rejects with a ValueError) is not retried.
    """
    if isinstance(error, ValueError):
        return Failure(False, None, f"invalid response: {error}")
    if not isinstance(error, GEMINI_ERRORS):
        return None
    description = describe_gemini_error(error)
    if isinstance(error, errors.APIError):
        retryable = error.code in (408, 429) or error.code >= 500
        headers = getattr(error.response, "headers", None) or {}
        retry_after = parse_retry_after(headers.get("retry-after"))
        return Failure(retryable, retry_after, description, rejected=not retryable)
    if isinstance(error, errors.UnknownApiResponseError):
        return Failure(False, None, description)
    return Failure(True, None, description)


class GeminiModel:
    """Streams answers from a Gemini model at temperature 0."""

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_GEMINI_MODEL,
        base_url: str | None = None,
        thinking_budget: int | None = 0,
        retry: RetryPolicy = QUESTION_RETRY,
        breaker: CircuitBreaker | None = None,
        timeout_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Create the client. No request is sent before the first ``stream`` call.

        On Gemini 2.5, thinking tokens count against ``max_output_tokens``, and a
        budget of 0 turns thinking off (Gemini API thinking guide), which keeps the
        whole token budget for the answer. Gemini 2.5 Pro cannot turn thinking off
        and rejects 0, so pass None there to use the model's default budget.

        Retries follow ``retry`` (the client's own retries are off) until the
        first text piece, ``breaker`` fails calls fast while the API is down,
        and ``sleep`` replaces ``time.sleep`` between retries, for tests.
        """
        if not api_key:
            raise ProviderError(
                "Missing Gemini API key. Set TORAH_STUDY_GEMINI_API_KEY."
            )
        self.name = f"gemini:{model}"
        self._model = model
        self._thinking_budget = thinking_budget
        self._retry = retry
        self._breaker = breaker
        self._sleep = sleep
        self._client = make_gemini_client(
            api_key, base_url=base_url, max_attempts=1, timeout_seconds=timeout_seconds
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield answer text as the API streams it, or raise ProviderError."""
        system, contents = _to_gemini_contents(messages)
        return retrying_stream(
            lambda: self._pieces(system, contents, max_tokens),
            classify_gemini_error,
            self._retry,
            operation=f"Gemini model {self._model}",
            breaker=self._breaker,
            sleep=self._sleep,
        )

    def _pieces(
        self, system: str | None, contents: list[types.Content], max_tokens: int
    ) -> Iterator[str | Usage]:
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=0,
            max_output_tokens=max_tokens,
            thinking_config=(
                None
                if self._thinking_budget is None
                else types.ThinkingConfig(thinking_budget=self._thinking_budget)
            ),
        )
        produced_text = False
        last_chunk: types.GenerateContentResponse | None = None
        for chunk in self._client.models.generate_content_stream(
            model=self._model, contents=contents, config=config
        ):
            last_chunk = chunk
            for text in _answer_texts(chunk):
                produced_text = True
                yield text
        if not produced_text:
            raise ProviderError(
                f"Gemini model {self._model} returned no text "
                f"({_stop_reason(last_chunk)})."
            )
        metadata = last_chunk.usage_metadata if last_chunk is not None else None
        if metadata is not None:
            yield Usage(metadata.prompt_token_count, metadata.candidates_token_count)


def _to_gemini_contents(
    messages: Sequence[ChatMessage],
) -> tuple[str | None, list[types.Content]]:
    """Split chat messages into Gemini's system instruction and turns.

    Gemini takes the system prompt apart from the turns and calls the assistant
    role "model".
    """
    system_parts = [m.content for m in messages if m.role == "system"]
    contents = [
        types.Content(
            role="model" if m.role == "assistant" else "user",
            parts=[types.Part(text=m.content)],
        )
        for m in messages
        if m.role != "system"
    ]
    if not contents:
        raise ProviderError("At least one user message is required.")
    system = "\n\n".join(system_parts) if system_parts else None
    return system, contents


def _answer_texts(chunk: types.GenerateContentResponse) -> Iterator[str]:
    """Yield the visible text parts of a chunk, skipping thought summaries."""
    if not chunk.candidates:
        return
    content = chunk.candidates[0].content
    if content is None or not content.parts:
        return
    for part in content.parts:
        if part.text and not part.thought:
            yield part.text


def _stop_reason(chunk: types.GenerateContentResponse | None) -> str:
    if chunk is None:
        return "empty response"
    feedback = chunk.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return f"prompt blocked: {feedback.block_reason}"
    if chunk.candidates and chunk.candidates[0].finish_reason is not None:
        return f"finish reason: {chunk.candidates[0].finish_reason}"
    return "no finish reason given"
