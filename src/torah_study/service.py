"""Wiring: build the store, models, retriever and pipeline from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from torah_study.accounts.mail import Mailer, SmtpMailer
from torah_study.accounts.service import AccountService
from torah_study.accounts.tokens import TokenCodec, resolve_secret
from torah_study.answer.llm import build_answer_model
from torah_study.answer.llm.base import AnswerModel, ProviderError
from torah_study.answer.pipeline import AnswerPipeline
from torah_study.answer.prompts import hypothetical_passage
from torah_study.config import Settings
from torah_study.conversations.chat import Rewriter
from torah_study.conversations.followup import (
    Turn,
    rewrite_followup,
    rewrite_with_model,
)
from torah_study.conversations.store import ConversationStore
from torah_study.conversations.titles import make_title
from torah_study.db.engine import (
    create_db_engine,
    read_session_factory,
    session_factory,
)
from torah_study.db.migrate import upgrade
from torah_study.embeddings import build_embeddings
from torah_study.embeddings.base import Embeddings
from torah_study.index.base import SegmentStore
from torah_study.index.factory import open_store
from torah_study.library.catalog import Catalog
from torah_study.library.lexicon import Lexicon
from torah_study.library.links import LinkIndex
from torah_study.retrieval.rerank import CohereReranker, OfflineReranker, Reranker
from torah_study.retrieval.retriever import RetrievalSettings, Retriever

logger = logging.getLogger(__name__)

# An answer whose row has not been written for this long lost its process.
STALE_STREAM = timedelta(minutes=5)


class NotIngestedError(RuntimeError):
    """Raised when the data folder has no ingested library yet."""


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    store: SegmentStore
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
    store = open_store(settings, embeddings.dimension)
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
            retry=settings.retrieval_retry,
            retry_margin=settings.retry_margin,
        ),
        LinkIndex(settings.links_path, catalog),
        lexicon=Lexicon.load(settings.lexicon_path),
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
    remote = settings.llm_provider in ("gemini", "openai")
    if answer_model is not None and remote and settings.expand_with_model:
        retriever.expander = partial(hypothetical_passage, answer_model)
    return Services(settings, catalog, store, embeddings, retriever, pipeline)


@dataclass
class Accounts:
    """The accounts database and what works on it."""

    engine: Engine
    sessions: sessionmaker[Session]
    auth: AccountService
    conversations: ConversationStore

    def close(self) -> None:
        self.engine.dispose()


def build_accounts(
    settings: Settings, catalog: Catalog | None = None, mailer: Mailer | None = None
) -> Accounts:
    """Open the database (migrating it when the settings say so) and the services.

    Raises SecretError when the JWT secret is unsafe for the environment.
    """
    secret = resolve_secret(settings)
    engine = create_db_engine(settings.database)
    if settings.migrate_on_start:
        upgrade(engine)
    sessions = session_factory(engine)
    read_sessions = read_session_factory(engine)
    codec = TokenCodec(
        secret,
        timedelta(minutes=settings.access_token_minutes),
        timedelta(days=settings.refresh_token_days),
    )
    if mailer is None and settings.smtp_host:
        mailer = SmtpMailer(settings)
    auth = AccountService(settings, sessions, codec, mailer, read_sessions)
    store = ConversationStore(
        sessions, lambda text: make_title(text, catalog), read_sessions
    )
    recovered = store.recover_stale(STALE_STREAM)
    if recovered:
        logger.warning("Marked %d unfinished answers as interrupted", recovered)
    with sessions.begin() as db:
        auth.limiter.prune(db)
    return Accounts(engine, sessions, auth, store)


def build_rewriter(settings: Settings, services: Services) -> Rewriter:
    """Follow-up rewriting: by the answer model when it is a remote one."""
    model = services.pipeline.model
    catalog = services.catalog
    remote = settings.llm_provider in ("gemini", "openai")
    if model is not None and remote and settings.rewrite_with_model:
        chosen = model

        def by_model(question: str, history: list[Turn]) -> str:
            return rewrite_with_model(chosen, question, history, catalog)

        return by_model

    def by_rules(question: str, history: list[Turn]) -> str:
        return rewrite_followup(question, history, catalog)

    return by_rules
