"""Wiring: build the store, models, retriever and pipeline from settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from torah_study.accounts.mail import Mailer, SmtpMailer
from torah_study.accounts.questions import KEY_PREFIX as QUESTION_KEY_PREFIX
from torah_study.accounts.questions import QuestionLimits
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
from torah_study.embeddings.retry import question_retry
from torah_study.index.base import SegmentStore
from torah_study.index.factory import open_store
from torah_study.library.catalog import OUTSIDE_TITLES_FILE, Catalog
from torah_study.library.lexicon import Lexicon
from torah_study.library.links import LinkIndex
from torah_study.providers.breaker import build_breaker
from torah_study.retrieval.rerank import CohereReranker, OfflineReranker, Reranker
from torah_study.retrieval.retriever import RetrievalSettings, Retriever

logger = logging.getLogger(__name__)

# An answer whose row has not been written for this long lost its process.
STALE_STREAM = timedelta(minutes=5)


# (name, inode, size, mtime in ns) of each library file, None when it is absent.
FileStamps = tuple[tuple[str, int, int, int] | None, ...]


class NotIngestedError(RuntimeError):
    """Raised when the data folder has no ingested library yet."""


@dataclass
class Services:
    """One consistent view of the library and the components that search it.

    A serving process replaces the whole object when an ingest changed the
    library (see ``refreshed``), so a request that took it at its start sees
    one index version and the catalog, lexicon and links of the same moment.
    """

    settings: Settings
    catalog: Catalog
    store: SegmentStore
    embeddings: Embeddings
    retriever: Retriever
    pipeline: AnswerPipeline
    # Stamps of the library files this view was loaded from; see file_stamps.
    stamps: FileStamps = ()


def build_reranker(settings: Settings, embeddings: Embeddings) -> Reranker:
    if settings.rerank_provider == "cohere":
        if settings.cohere_api_key is None:
            raise ValueError("Cohere rerank needs TORAH_STUDY_COHERE_API_KEY.")
        return CohereReranker(
            settings.cohere_api_key.get_secret_value(),
            settings.rerank_model,
            settings.cohere_base_url,
            retry=question_retry(settings),
            breaker=build_breaker("Cohere rerank", settings),
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
    embeddings = build_embeddings(settings, serving=True)
    reranker = build_reranker(settings, embeddings)
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
    return _assemble(settings, embeddings, reranker, answer_model)


def refreshed(services: Services) -> Services | None:
    """Return a new view when an ingest changed the library since ``services``.

    The new view shares the models of ``services`` and opens the index at its
    newest version. Returns None when neither the index versions nor the
    library files changed.
    """
    settings = services.settings
    stamps = file_stamps(settings)
    if settings.retrieval_backend == "postgres":
        # PostgreSQL readers always see committed rows, so only the files
        # beside the index can change, and the connection pool is kept.
        if stamps == services.stamps:
            return None
        store = services.store
    else:
        store = _open_store(settings, services.embeddings)
        if store.versions() == services.store.versions() and stamps == services.stamps:
            return None
    return _assemble(
        settings,
        services.embeddings,
        services.retriever.reranker,
        services.pipeline.model,
        store=store,
        stamps=stamps,
    )


def _open_store(settings: Settings, embeddings: Embeddings) -> SegmentStore:
    return open_store(settings, embeddings.dimension)


def _assemble(
    settings: Settings,
    embeddings: Embeddings,
    reranker: Reranker,
    answer_model: AnswerModel | None,
    *,
    store: SegmentStore | None = None,
    stamps: FileStamps | None = None,
) -> Services:
    """Open the index and the library files and build the search components.

    The order keeps the view consistent while an ingest runs. The files are
    stamped first, so a change during loading is found at the next refresh.
    The index is opened before the catalog is read: the ingest saves a book
    in the catalog before it writes the book's rows, so every book in the
    opened index is in the catalog read after it.
    """
    if stamps is None:
        stamps = file_stamps(settings)
    if store is None:
        store = _open_store(settings, embeddings)
    catalog = Catalog.load(settings.catalog_path)
    retriever = Retriever(
        store,
        catalog,
        embeddings,
        reranker,
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
    pipeline = AnswerPipeline(retriever, catalog, answer_model, settings.llm_max_tokens)
    remote = settings.llm_provider in ("gemini", "openai")
    if answer_model is not None and remote and settings.expand_with_model:
        retriever.expander = partial(hypothetical_passage, answer_model)
    return Services(settings, catalog, store, embeddings, retriever, pipeline, stamps)


def file_stamps(settings: Settings) -> FileStamps:
    """Return (name, inode, size, mtime in ns) of each library file, None if absent.

    An ingest replaces each file by renaming a new one over it, so a new
    inode shows a change even within the file system's mtime resolution.
    """
    paths = (
        settings.catalog_path,
        settings.catalog_path.with_name(OUTSIDE_TITLES_FILE),
        settings.lexicon_path,
        settings.links_path,
        settings.parashot_path,
    )
    stamps: list[tuple[str, int, int, int] | None] = []
    for path in paths:
        try:
            status = path.stat()
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append((path.name, status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(stamps)


class LibraryWatcher:
    """Looks for a changed library at most once per ``interval`` seconds.

    Serving processes call ``check`` at the start of a request. A failed
    check (for example a catalog that cannot be read) is logged and the
    current view stays in use until a later check succeeds.
    """

    def __init__(
        self, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._due = clock() + interval
        self._lock = threading.Lock()
        self._last_error = ""

    def check(self, current: Services, install: Callable[[Services], None]) -> None:
        """Hand a new view to ``install`` when the library changed since ``current``.

        Requests that arrive while one checks wait for it, so none of them
        starts on the view being replaced.
        """
        if self._clock() < self._due:
            return
        with self._lock:
            if self._clock() < self._due:
                return
            try:
                fresh = refreshed(current)
            except Exception as error:  # any failure keeps the current view
                if str(error) != self._last_error:
                    logger.exception("Reloading the library failed")
                    self._last_error = str(error)
                return
            finally:
                self._due = self._clock() + self.interval
            self._last_error = ""
            if fresh is None:
                return
            install(fresh)
            logger.info(
                "Reloaded the library: %d books, index versions %s",
                len(fresh.catalog),
                fresh.store.versions(),
            )


@dataclass
class Accounts:
    """The accounts database and what works on it."""

    engine: Engine
    sessions: sessionmaker[Session]
    auth: AccountService
    conversations: ConversationStore
    questions: QuestionLimits

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
    questions = QuestionLimits(
        sessions, settings.questions_per_minute, settings.questions_per_day
    )
    with sessions.begin() as db:
        auth.limiter.prune(db, exclude=(QUESTION_KEY_PREFIX,))
        questions.prune(db)
    return Accounts(engine, sessions, auth, store, questions)


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
