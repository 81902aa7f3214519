"""Answer model backed by the Gemini API through the ``google-genai`` client."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence

import httpx
from google import genai
from google.genai import errors, types

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage

DEFAULT_GEMINI_MODEL = "gemini-2.5-flash"

# Status codes that the client retries, with exponential backoff starting at 1 s.
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


class GeminiModel:
    """Streams answers from a Gemini model at temperature 0."""

    def __init__(
        self,
        api_key: str,
        *,
        model: str = DEFAULT_GEMINI_MODEL,
        base_url: str | None = None,
        thinking_budget: int | None = 0,
        max_attempts: int = 3,
        timeout_seconds: float = 120.0,
    ) -> None:
        """Create the client. No request is sent before the first ``stream`` call.

        On Gemini 2.5, thinking tokens count against ``max_output_tokens``, and a
        budget of 0 turns thinking off (Gemini API thinking guide), which keeps the
        whole token budget for the answer. Gemini 2.5 Pro cannot turn thinking off
        and rejects 0, so pass None there to use the model's default budget.
        """
        if not api_key:
            raise ProviderError(
                "Missing Gemini API key. Set TORAH_STUDY_GEMINI_API_KEY."
            )
        self.name = f"gemini:{model}"
        self._model = model
        self._thinking_budget = thinking_budget
        self._client = make_gemini_client(
            api_key,
            base_url=base_url,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield answer text as the API streams it, or raise ProviderError."""
        system, contents = _to_gemini_contents(messages)
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
        try:
            for chunk in self._client.models.generate_content_stream(
                model=self._model, contents=contents, config=config
            ):
                last_chunk = chunk
                for text in _answer_texts(chunk):
                    produced_text = True
                    yield text
        except GEMINI_ERRORS as error:
            raise ProviderError(
                f"Gemini model {self._model} failed: {describe_gemini_error(error)}"
            ) from error
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
