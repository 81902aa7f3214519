"""LocalModel with llama-cpp-python and the SmolLM2-135M weights.

The generation tests need ``llama_cpp`` and ``smollm2-135m.gguf`` in the folder given
by TORAH_STUDY_TEST_MODELS_DIR (default ~/.cache/torah-study/models). Fetch the
weights with ``fetch_model("smollm2-135m", folder)``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path

import pytest
from fake_chat_api import text_of, text_pieces

from torah_study.answer.llm import ChatMessage, ProviderError
from torah_study.answer.llm.base import Usage
from torah_study.answer.llm.local import LocalModel
from torah_study.answer.llm.weights import model_path

MODELS_DIR = Path(
    os.environ.get(
        "TORAH_STUDY_TEST_MODELS_DIR",
        str(Path.home() / ".cache" / "torah-study" / "models"),
    )
)
SMOLLM2 = model_path("smollm2-135m", MODELS_DIR)
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None

needs_llama_cpp = pytest.mark.skipif(
    not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed"
)
needs_smollm2 = pytest.mark.skipif(
    not (HAS_LLAMA_CPP and SMOLLM2.is_file()),
    reason=f"needs llama-cpp-python and {SMOLLM2}",
)

QUESTION = [
    ChatMessage(role="system", content="You are a helpful assistant. Be brief."),
    ChatMessage(role="user", content="Name the five books of the Torah."),
]


@pytest.fixture(scope="module")
def smollm2() -> LocalModel:
    return LocalModel(SMOLLM2, n_ctx=1024, n_threads=2)


@needs_smollm2
def test_stream_yields_several_pieces(smollm2: LocalModel) -> None:
    streamed = list(smollm2.stream(QUESTION, max_tokens=24))
    pieces = text_pieces(iter(streamed))
    usage = streamed[-1]

    assert len(pieces) >= 2
    assert all(piece for piece in pieces)
    assert "".join(pieces).strip()
    assert isinstance(usage, Usage)
    assert usage.completion_tokens is not None
    assert len(pieces) <= usage.completion_tokens <= 24
    assert usage.prompt_tokens is not None
    assert usage.prompt_tokens > 5
    assert smollm2.name == "local:smollm2-135m"


@needs_smollm2
def test_max_tokens_limits_output(smollm2: LocalModel) -> None:
    pieces = text_pieces(smollm2.stream(QUESTION, max_tokens=5))

    # Each streamed piece is one token, or none for an incomplete UTF-8 sequence.
    assert 1 <= len(pieces) <= 5


@needs_smollm2
def test_temperature_zero_is_repeatable(smollm2: LocalModel) -> None:
    first = text_of(smollm2.stream(QUESTION, max_tokens=16))
    second = text_of(smollm2.stream(QUESTION, max_tokens=16))

    assert first == second


@needs_smollm2
def test_warm_loads_the_model(smollm2: LocalModel) -> None:
    smollm2.warm()

    assert smollm2._llama is not None


@needs_smollm2
def test_concurrent_streams_both_finish(smollm2: LocalModel) -> None:
    expected = text_of(smollm2.stream(QUESTION, max_tokens=12))
    results: list[str] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            results.append(text_of(smollm2.stream(QUESTION, max_tokens=12)))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert results == [expected, expected]


@needs_smollm2
def test_prompt_longer_than_context_raises() -> None:
    model = LocalModel(SMOLLM2, n_ctx=512, n_threads=2)
    long_question = [ChatMessage(role="user", content="Torah " * 2000)]

    with pytest.raises(ProviderError, match="context window"):
        list(model.stream(long_question, max_tokens=8))


@needs_smollm2
def test_invalid_gguf_raises(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(SMOLLM2.read_bytes()[:4096])
    model = LocalModel(broken, n_ctx=512, n_threads=1)

    with pytest.raises(ProviderError, match="Failed to load"):
        list(model.stream(QUESTION, max_tokens=4))


@needs_llama_cpp
def test_missing_model_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="Model file not found"):
        LocalModel(tmp_path / "absent.gguf")


def test_missing_package_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import llama_cpp` raise ImportError.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)

    with pytest.raises(ProviderError, match=r"pip install 'torah-study\[local-llm\]'"):
        LocalModel(tmp_path / "absent.gguf")
