"""Answer model for any server that speaks the OpenAI chat completions API.

This covers OpenAI itself and self-hosted servers such as vLLM, llama.cpp's
``llama-server`` and Ollama, which usually need no API key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage

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
    waits 0.5 s to 8 s between attempts.
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


class OpenAICompatibleModel:
    """Streams answers from an OpenAI-compatible chat endpoint at temperature 0."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        max_retries: int = 2,
        timeout_seconds: float = 120.0,
    ) -> None:
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
        self._client = make_openai_client(
            base_url,
            api_key,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
        )

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield answer text as the server streams it, or raise ProviderError."""
        try:
            chunks = self._client.chat.completions.create(
                model=self._model,
                messages=[_to_openai_message(m) for m in messages],
                stream=True,
                temperature=0,
                # NOTE: OpenAI's newest models want max_completion_tokens, but
                # self-hosted servers (vLLM, llama-server, Ollama) read max_tokens.
                max_tokens=max_tokens,
            )
            # TODO: ask for usage (stream_options include_usage) where the
            # server supports it; now only servers that send it anyway count.
            usage: Usage | None = None
            for chunk in chunks:
                if chunk.usage is not None:
                    usage = Usage(
                        chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                    )
                # Some servers send a final chunk with usage and no choices.
                if not chunk.choices:
                    continue
                text = chunk.choices[0].delta.content
                if text:
                    yield text
            if usage is not None:
                yield usage
        except openai.OpenAIError as error:
            raise ProviderError(
                f"OpenAI-compatible model {self._model} failed: "
                f"{describe_openai_error(error)}"
            ) from error


def _to_openai_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return ChatCompletionSystemMessageParam(role="system", content=message.content)
    if message.role == "assistant":
        return ChatCompletionAssistantMessageParam(
            role="assistant", content=message.content
        )
    return ChatCompletionUserMessageParam(role="user", content=message.content)
