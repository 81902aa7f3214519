"""Answer model that runs a GGUF model in-process with llama-cpp-python."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "Install the local model runtime with `pip install 'torah-study[local-llm]'` "
    "(it builds llama-cpp-python from source, which needs cmake and a C++ compiler)."
)


def import_llama_cpp() -> Any:
    """Import llama_cpp on first use, because it is an optional, compiled extra."""
    try:
        import llama_cpp
    except ImportError as error:
        raise ProviderError(
            f"llama-cpp-python is not installed ({error}). {INSTALL_HINT}"
        ) from error
    except (OSError, RuntimeError) as error:
        # llama_cpp raises these when its compiled library fails to load.
        raise ProviderError(
            f"llama-cpp-python is installed but failed to load: {error}. "
            f"Reinstall it. {INSTALL_HINT}"
        ) from error
    return llama_cpp


class LocalModel:
    """Streams answers from a local GGUF model at temperature 0.

    The weights are loaded on the first ``stream`` or ``warm`` call. One lock
    serialises generations, because a ``llama_cpp.Llama`` instance holds one KV
    cache and must not run two generations at once.
    """

    def __init__(self, model_path: Path, *, n_ctx: int = 4096, n_threads: int = 2):
        """Raise ProviderError unless llama_cpp imports and the model file exists."""
        self._llama_cpp = import_llama_cpp()
        if not model_path.is_file():
            raise ProviderError(
                f"Model file not found: {model_path}. Fetch the default model "
                "with `torah-study models qwen2.5-0.5b`, or set "
                "TORAH_STUDY_LLM_MODEL_PATH to a GGUF file."
            )
        self.name = f"local:{model_path.stem}"
        self.model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._llama: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        """Load the weights on first use. The caller must hold the lock."""
        if self._llama is None:
            started = time.perf_counter()
            try:
                self._llama = self._llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self._n_ctx,
                    n_threads=self._n_threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as error:
                raise ProviderError(
                    f"Failed to load {self.model_path} with llama-cpp-python: {error}. "
                    "The file may be truncated or not a GGUF model; fetch it again."
                ) from error
            logger.info(
                "Loaded %s in %.1f s (n_ctx=%d, n_threads=%d)",
                self.model_path,
                time.perf_counter() - started,
                self._n_ctx,
                self._n_threads,
            )
        return self._llama

    def load(self) -> None:
        """Load the weights now instead of at the first answer.

        llama-cpp-python silences the whole process's stdout and stderr while
        it loads a model, so a server loads it before it starts logging.
        """
        with self._lock:
            self._load()

    def warm(self) -> None:
        """Load the weights and generate one token.

        The first generation after loading is much slower than later ones, so a
        server calls this at start-up to keep that delay out of the first answer.
        """
        for _ in self.stream([ChatMessage(role="user", content="Hi")], max_tokens=1):
            pass

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str | Usage]:
        """Yield answer text as the model generates it, or raise ProviderError.

        The lock is held until the generator finishes or is closed, so a caller
        that stops reading early should close the generator.
        """
        with self._lock:
            llama = self._load()
            # llama-cpp-python reuses the KV cache for a prompt prefix it has seen,
            # and the logits then differ slightly from a full evaluation. At
            # temperature 0 that can change the answer, so the cache is cleared
            # and every prompt is evaluated in full.
            llama.reset()
            try:
                chunks = llama.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    temperature=0.0,
                    max_tokens=max_tokens,
                )
                generated = 0
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    delta = choice["delta"]
                    if "content" in delta and choice.get("finish_reason") is None:
                        # One chunk per generated token; the first chunk only
                        # names the role.
                        generated += 1
                    text = delta.get("content")
                    if text:
                        yield text
                # After reset() the context holds the prompt and the answer.
                prompt = int(getattr(llama, "n_tokens", 0)) - generated
                yield Usage(prompt if prompt > 0 else None, generated)
            except (ValueError, RuntimeError) as error:
                # llama-cpp-python raises ValueError when the prompt does not fit
                # in the context window.
                raise ProviderError(
                    f"Local model {self.name} failed: {error}"
                ) from error
