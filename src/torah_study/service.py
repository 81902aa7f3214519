"""Wiring: build the store, models, retriever and pipeline from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torah_study.answer.llm import build_answer_model
from torah_study.answer.llm.base import AnswerModel, ProviderError
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.config import Settings
from torah_study.embeddings import build_embeddings
from torah_study.embeddings.base import Embeddings
from torah_study.index.lance import LanceStore
from torah_study.library.catalog import Catalog
from torah_study.retrieval.rerank import CohereReranker, OfflineReranker, Reranker
from torah_study.retrieval.retriever import RetrievalSettings, Retriever

logger = logging.getLogger(__name__)


class NotIngestedError(RuntimeError):
    """Raised when the data folder has no ingested library yet."""


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: LanceStore
    embeddings: Embeddings
    retriever: Retriever
    pipeline: AnswerPipeline


def build_reranker(settings: Settings, embeddings: Embeddings) -> Reranker:
    if settings.rerank_provider == "cohere":
        if settings.cohere_api_key is None:
            raise ValueError("Cohere rerank needs TORAH_STUDY_COHERE_API_KEY.")
        return CohereReranker(
            settings.cohere_api_key.get_secret_value(),
            settings.rerank_model,
            settings.cohere_base_url,
        )
    return OfflineReranker(embeddings)


def build_services(
    settings: Settings, *, model: AnswerModel | str | None = "settings"
) -> Services:
    """Open the ingested library and build every component named by ``settings``.

    ``model`` overrides the answer model (None means sources only); by default
    it comes from the settings.
    """
    if not settings.catalog_path.exists():
        raise NotIngestedError(
            f"No library in {settings.data_dir}: run `torah-study ingest` first."
        )
    catalog = Catalog.load(settings.catalog_path)
    embeddings = build_embeddings(settings)
    store = LanceStore(settings.index_dir, dimension=embeddings.dimension)
    retriever = Retriever(
        store,
        catalog,
        embeddings,
        build_reranker(settings, embeddings),
        RetrievalSettings(
            keyword_k=settings.keyword_k,
            dense_k=settings.dense_k,
            rrf_k=settings.rrf_k,
            rerank_candidates=settings.rerank_candidates,
            top_k=settings.top_k,
            gate_threshold=settings.gate_threshold,
        ),
    )
    if model == "settings":
        try:
            answer_model = build_answer_model(settings)
        except ProviderError as error:
            logger.error(
                "Answer model unavailable, answering with sources only: %s", error
            )
            answer_model = None
    else:
        answer_model = model  # type: ignore[assignment]
    pipeline = AnswerPipeline(retriever, catalog, answer_model, settings.llm_max_tokens)
    return Services(settings, catalog, store, embeddings, retriever, pipeline)
