"""build_answer_model chooses and configures a provider from Settings."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_chat_api import FakeChatServer, text_of
from pydantic import SecretStr

from torah_study.answer.llm import ChatMessage, ProviderError, build_answer_model
from torah_study.answer.llm.gemini import GeminiModel
from torah_study.answer.llm.openai_compat import OpenAICompatibleModel
from torah_study.config import Settings

MODELS_DIR = Path(
    os.environ.get(
        "TORAH_STUDY_TEST_MODELS_DIR",
        str(Path.home() / ".cache" / "torah-study" / "models"),
    )
)
SMOLLM2 = MODELS_DIR / "smollm2-135m.gguf"
HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_smollm2 = pytest.mark.skipif(
    not (HAS_LLAMA_CPP and SMOLLM2.is_file()),
    reason=f"needs llama-cpp-python and {SMOLLM2}",
)

QUESTION = [ChatMessage(role="user", content="Say hello.")]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop TORAH_STUDY_* variables so that a developer's own keys do not leak in."""
    for name in list(os.environ):
        if name.startswith("TORAH_STUDY_"):
            monkeypatch.delenv(name)


def make_settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def test_sources_returns_none(tmp_path: Path) -> None:
    assert build_answer_model(make_settings(tmp_path, llm_provider="sources")) is None


def test_gemini_requires_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_provider="gemini")

    with pytest.raises(ProviderError, match="TORAH_STUDY_GEMINI_API_KEY"):
        build_answer_model(settings)


def test_gemini_streams_from_base_url(
    tmp_path: Path, gemini_server: FakeChatServer
) -> None:
    settings = make_settings(
        tmp_path,
        llm_provider="gemini",
        gemini_api_key=SecretStr("k"),
        gemini_base_url=gemini_server.base_url,
        llm_model="gemini-custom",
    )

    model = build_answer_model(settings)

    assert isinstance(model, GeminiModel)
    assert model.name == "gemini:gemini-custom"
    assert text_of(model.stream(QUESTION, max_tokens=8)) == "Hello, world!"
    assert "/models/gemini-custom:" in gemini_server.requests[0].path


def test_gemini_default_model(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, llm_provider="gemini", gemini_api_key=SecretStr("k")
    )

    model = build_answer_model(settings)

    assert model is not None
    assert model.name == "gemini:gemini-2.5-flash"


def test_openai_requires_base_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_provider="openai", llm_model="m")

    with pytest.raises(ProviderError, match="TORAH_STUDY_OPENAI_BASE_URL"):
        build_answer_model(settings)


def test_openai_streams_from_base_url(
    tmp_path: Path, openai_server: FakeChatServer
) -> None:
    settings = make_settings(
        tmp_path,
        llm_provider="openai",
        openai_base_url=f"{openai_server.base_url}/v1",
        openai_api_key=SecretStr("sk-x"),
        llm_model="served-model",
    )

    model = build_answer_model(settings)

    assert isinstance(model, OpenAICompatibleModel)
    assert text_of(model.stream(QUESTION, max_tokens=8)) == "Hello, world!"
    request = openai_server.requests[0]
    assert request.body["model"] == "served-model"
    assert request.headers["authorization"] == "Bearer sk-x"


def test_local_missing_weights_raises(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_provider="local")

    # The message names the package when llama_cpp is absent, else the file.
    with pytest.raises(ProviderError, match=r"llama-cpp-python|qwen2\.5-0\.5b\.gguf"):
        build_answer_model(settings)


def test_auto_without_weights_returns_none(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, llm_provider="auto")

    assert build_answer_model(settings) is None


def test_auto_without_llama_cpp_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    model_file = tmp_path / "models" / "qwen2.5-0.5b.gguf"
    model_file.parent.mkdir()
    model_file.write_bytes(b"GGUF")
    settings = make_settings(tmp_path, llm_provider="auto")

    assert build_answer_model(settings) is None


@needs_smollm2
@pytest.mark.parametrize("provider", ["auto", "local"])
def test_local_model_from_settings(tmp_path: Path, provider: str) -> None:
    settings = make_settings(
        tmp_path,
        llm_provider=provider,
        llm_model_path=SMOLLM2,
        llm_context=1024,
        llm_threads=1,
    )

    model = build_answer_model(settings)

    assert model is not None
    assert model.name == "local:smollm2-135m"
    assert text_of(model.stream(QUESTION, max_tokens=4)).strip()


@needs_smollm2
def test_local_default_path_in_models_dir(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "qwen2.5-0.5b.gguf").symlink_to(SMOLLM2)
    settings = make_settings(tmp_path, llm_provider="local")

    model = build_answer_model(settings)

    assert model is not None
    assert model.name == "local:qwen2.5-0.5b"
