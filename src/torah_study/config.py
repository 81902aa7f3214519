"""Settings, read from the environment (prefix ``TORAH_STUDY_``) or a ``.env`` file."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DENSE_SCOPE = (
    "Tanakh",
    "Mishnah",
    "Mishneh Torah",
    "Shulchan Arukh",
)


# Seconds a replaced index version is kept beyond the refresh interval.
MIN_VERSION_MARGIN_SECONDS = 60.0


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "torah-study"


class Settings(BaseSettings):
    """All tunables of the service and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="TORAH_STUDY_", env_file=".env", extra="ignore"
    )

    # Library and storage.
    export_dir: Path | None = Field(
        default=None,
        description="Folder of a Sefaria-Export tree (the one that contains json/).",
    )
    # NoDecode: these lists are read by _list_or_one, which also takes a
    # single value written without JSON brackets.
    dump_paths: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description=(
            "Sefaria dataset dump files (JSON Lines, one segment per line) to "
            "ingest next to or instead of an export; in the environment a JSON "
            'list such as ["/data/sefaria.jsonl"].'
        ),
    )
    link_paths: Annotated[tuple[Path, ...], NoDecode] = Field(
        default=(),
        description="Links CSV files outside an export, read during ingestion.",
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    web_dir: Path | None = Field(
        default=None,
        description=(
            "Folder of the built web app (the one with index.html); by default "
            "web/out of the checkout the package is installed from."
        ),
    )
    dense_scope: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_DENSE_SCOPE,
        description=(
            "Book titles or category names whose segments get dense vectors; "
            "'*' embeds everything. Keyword search always covers the whole library."
        ),
    )
    books: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Ingest only these book titles or categories; empty means all.",
    )
    index_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description=(
            "How often, in seconds, a serving process checks for a newer index "
            "version and changed library files (catalog, lexicon, links, "
            "parashot) written by an ingest; 0 checks before every request."
        ),
    )
    index_keep_versions_seconds: float = Field(
        default=600.0,
        ge=0,
        description=(
            "How long, in seconds, an ingest keeps an index version after a "
            "newer one replaced it, for serving processes still reading it. "
            "Must exceed index_refresh_seconds by at least a minute."
        ),
    )

    # Retrieval store.
    retrieval_backend: Literal["lance", "postgres"] = Field(
        default="lance",
        description=(
            "Where segments and vectors are kept: LanceDB files in the data "
            "folder, or PostgreSQL with pgvector."
        ),
    )
    retrieval_database_url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL URL of the retrieval tables for the postgres backend; "
            "default: database_url when that is PostgreSQL."
        ),
    )
    retrieval_pool_size: int = Field(
        default=10, ge=1, le=200, description="Connections per process to it."
    )
    retrieval_build_memory_mb: int = Field(
        default=1024,
        ge=64,
        le=65536,
        description="maintenance_work_mem of the HNSW index build, in MB.",
    )
    retrieval_nprobes: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="IVF partitions a dense query reads once LanceDB has a "
        "vector index.",
    )
    retrieval_refine_factor: int = Field(
        default=10,
        ge=1,
        le=100,
        description="LanceDB reads refine_factor × k approximate neighbours and "
        "ranks them by exact distance (1: no refinement).",
    )
    retrieval_ef_search: int = Field(
        # 400 found 82% of the exact top 10 on 3.5 million vectors, 100 found 58%.
        default=400,
        ge=1,
        le=1000,
        description="HNSW candidate list size of dense queries (pgvector ef_search).",
    )

    # Embeddings.
    embedding_provider: Literal["e5", "gemini", "openai"] = "e5"
    embedding_model: str = ""
    embedding_dimension: int = Field(
        default=768,
        ge=8,
        le=8192,
        description="Vector size requested from remote embedding providers.",
    )
    embedding_batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Segments embedded and stored together; a killed run loses "
        "at most the batches in flight.",
    )
    embedding_workers: int = Field(default=2, ge=1, le=64)
    embedding_max_attempts: int = Field(
        default=6,
        ge=1,
        le=20,
        description="Attempts per request to a remote embedding provider.",
    )
    embedding_requests_per_minute: float = Field(
        default=0.0,
        ge=0.0,
        description="Remote embedding requests per minute; 0 turns the limit off.",
    )
    embedding_tokens_per_minute: float = Field(
        default=0.0,
        ge=0.0,
        description="Estimated input tokens sent to a remote embedding provider "
        "per minute; 0 turns the limit off.",
    )
    embedding_timeout_seconds: float = Field(default=120.0, gt=0)

    # Retrieval.
    keyword_k: int = Field(default=300, ge=1, le=1000)
    dense_k: int = Field(default=60, ge=1, le=500)
    rrf_k: int = Field(default=60, ge=1)
    rerank_candidates: int = Field(default=400, ge=1, le=1000)
    rerank_provider: Literal["offline", "cohere"] = "offline"
    rerank_model: str = "rerank-v3.5"
    top_k: int = Field(default=5, ge=1, le=20)
    # Calibrated with `torah-study eval --calibrate` on the evaluation set
    # (docs/evaluation.md): the lowest threshold that abstains on 95% of the
    # out-of-library questions.
    gate_threshold: float = Field(default=0.275, ge=0.0, le=1.0)

    # Answers.
    llm_provider: Literal["auto", "local", "sources", "gemini", "openai"] = "auto"
    llm_model_path: Path | None = None
    llm_model: str = ""
    llm_threads: int = Field(default=2, ge=1, le=64)
    llm_context: int = Field(default=4096, ge=512)
    llm_max_tokens: int = Field(default=512, ge=16, le=8192)
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    cohere_api_key: SecretStr | None = None
    cohere_base_url: str | None = None

    # Faults of remote providers while a question is answered.
    provider_max_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description=(
            "Attempts per request to a remote answer model (before its first "
            "token), query embedding or Cohere rerank."
        ),
    )
    provider_max_retry_after_seconds: float = Field(
        default=10.0,
        ge=0.0,
        description=(
            "Longest Retry-After, in seconds, waited for during a question; a "
            "server that asks for more fails the request at once."
        ),
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description=(
            "Consecutive failed requests to one remote provider that open its "
            "circuit breaker, which then fails calls at once."
        ),
    )
    breaker_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Failures further apart than this many seconds start a new count.",
    )
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds an open breaker fails calls at once before it lets one "
            "trial request through."
        ),
    )

    # Service.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    keepalive_seconds: float = Field(default=10.0, gt=0)
    shutdown_grace_seconds: int = Field(
        default=20,
        ge=0,
        le=3600,
        description=(
            "Seconds that answers still streaming when the service is told to "
            "stop get to finish; then they are stopped and saved as interrupted."
        ),
    )
    max_body_bytes: int = Field(
        default=65_536, ge=1024, description="Largest request body accepted."
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="In production the service refuses to start without a JWT secret.",
    )
    behind_https: bool = Field(
        default=False,
        description=(
            "Browsers reach the service only over HTTPS (directly or through a "
            "proxy), so responses carry Strict-Transport-Security."
        ),
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Other web origins (scheme://host[:port]) whose pages may call the "
            'API, as a JSON list such as ["https://study.example.org"]; empty '
            "allows no cross-origin calls, which the built-in web app does not need."
        ),
    )

    # Observability.
    log_format: Literal["text", "json"] | None = Field(
        default=None,
        description=(
            "Log lines as plain text or as one JSON object each; unset means "
            "text, except `serve` in production, which logs JSON."
        ),
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at /metrics."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "When set, /metrics requires the header Authorization: Bearer <this token>."
        ),
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description=(
            "Base URL of an OTLP/HTTP collector, e.g. http://localhost:4318, "
            "to export traces to; without it OTEL_EXPORTER_OTLP_ENDPOINT is "
            "read, and with neither tracing is off."
        ),
    )
    trace_question_text: bool = Field(
        default=False,
        description="Add the question text to the answer spans of traces.",
    )

    calendar_diaspora: bool = Field(
        default=True,
        description=(
            "Weekly portions by the diaspora calendar; false follows Israel's."
        ),
    )

    # Accounts and conversations.
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the accounts database, e.g. "
            "postgresql://user:password@host/torah_study; "
            "default: SQLite in the data folder."
        ),
    )
    migrate_on_start: bool = True
    retrieval_retry: bool = Field(
        default=True,
        description=(
            "When a search is too weak to answer, reformulate it (terms in both "
            "languages, and a hypothetical passage from a remote answer model "
            "when expand_with_model is on) and search once more before abstaining."
        ),
    )
    retry_margin: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="How far above the gate threshold a retried search must score.",
    )
    expand_with_model: bool = Field(
        default=True,
        description=(
            "Let a remote answer model (Gemini or OpenAI-compatible) write the "
            "hypothetical passage of a reformulated search."
        ),
    )
    rewrite_with_model: bool = Field(
        default=True,
        description=(
            "Rewrite follow-up questions with a remote answer model (Gemini or "
            "OpenAI-compatible); otherwise, and for the local model, by rules."
        ),
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Key that signs tokens, at least 32 characters. In development a "
            "random key is kept in the data folder when none is set."
        ),
    )
    access_token_minutes: int = Field(default=15, ge=1, le=1440)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    password_min_length: int = Field(default=10, ge=8, le=128)

    # One-time email codes after password sign-in (and after registration).
    mfa_enabled: bool = False
    mfa_code_minutes: int = Field(default=10, ge=1, le=60)
    mfa_max_attempts: int = Field(default=5, ge=1, le=20)

    # Rate limits: failed attempts counted per account and per client address.
    rate_window_seconds: int = Field(default=900, ge=1)
    login_limit_per_account: int = Field(default=5, ge=1)
    login_limit_per_address: int = Field(default=30, ge=1)
    code_limit_per_address: int = Field(default=30, ge=1)
    codes_per_account: int = Field(
        default=5, ge=1, description="Email codes sent to one account per window."
    )
    register_limit_per_address: int = Field(default=20, ge=1)

    # Questions (/chat, /chat/stream and asking in a conversation), counted
    # per account over a sliding minute and day.
    questions_per_minute: int = Field(
        default=10, ge=0, description="Questions per account per minute; 0: no limit."
    )
    questions_per_day: int = Field(
        default=500, ge=0, description="Questions per account per day; 0: no limit."
    )

    # Outgoing mail (the email codes).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    mail_from: str = "Torah Study <no-reply@localhost>"

    @field_validator(
        "dump_paths",
        "link_paths",
        "dense_scope",
        "books",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _list_or_one(cls, value: Any) -> Any:
        """Read a JSON list, or take a plain string as a list of one item.

        TORAH_STUDY_BOOKS=Genesis means ["Genesis"]; an empty string means
        an empty list.
        """
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError as error:
                raise ValueError(f"{text!r} is not a JSON list: {error}") from error
        return (text,) if text else ()

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        """Accept only exact origins, the form browsers send in the Origin header."""
        for origin in origins:
            if origin.strip() == "*":
                raise ValueError(
                    "cors_origins does not take '*': list each origin that may "
                    'call the API, such as ["https://study.example.org"].'
                )
            parts = urlsplit(origin)
            exact = f"{parts.scheme}://{parts.netloc}"
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or "@" in parts.netloc
                or origin != exact.lower()
            ):
                raise ValueError(
                    f"{origin!r} in cors_origins is not an origin: write the "
                    "lowercase scheme and host with an optional port and no "
                    "path or trailing slash, such as https://study.example.org."
                )
        return origins

    @model_validator(mode="after")
    def _check_version_retention(self) -> Settings:
        # A serving process reads a replaced version for up to one refresh
        # interval plus the length of a request; a minute covers the request.
        least = self.index_refresh_seconds + MIN_VERSION_MARGIN_SECONDS
        if self.index_keep_versions_seconds < least:
            raise ValueError(
                f"index_keep_versions_seconds is {self.index_keep_versions_seconds}"
                f" but must be at least index_refresh_seconds + "
                f"{MIN_VERSION_MARGIN_SECONDS} ({least}), or serving processes may "
                "read index files an ingest already deleted."
            )
        return self

    @property
    def resolved_log_format(self) -> Literal["text", "json"]:
        """The log format of ``serve``: the setting, else JSON in production."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @property
    def index_keep_versions(self) -> timedelta:
        return timedelta(seconds=self.index_keep_versions_seconds)

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.json"

    @property
    def links_path(self) -> Path:
        return self.data_dir / "links.sqlite"

    @property
    def lexicon_path(self) -> Path:
        return self.data_dir / "lexicon.json"

    @property
    def parashot_path(self) -> Path:
        return self.data_dir / "parashot.json"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def database(self) -> str:
        """The database URL in use: the setting, or SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'torah-study.db'}"

    @property
    def retrieval_database(self) -> str:
        """The libpq URL of the PostgreSQL retrieval store.

        Raises ValueError when neither ``retrieval_database_url`` nor a
        PostgreSQL ``database_url`` is set.
        """
        url = self.retrieval_database_url or self.database_url
        if not url:
            raise ValueError(
                "The postgres retrieval backend needs a database: set "
                "TORAH_STUDY_RETRIEVAL_DATABASE_URL (or a PostgreSQL "
                "TORAH_STUDY_DATABASE_URL)."
            )
        return libpq_url(url)


def libpq_url(url: str) -> str:
    """Return ``url`` as a libpq URL; raise ValueError unless it is PostgreSQL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValueError(f"Invalid database URL {url!r}: {error}") from error
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        shown = parsed.render_as_string(hide_password=True)
        raise ValueError(
            f"The postgres retrieval backend needs a PostgreSQL URL, not {shown}: "
            "set TORAH_STUDY_RETRIEVAL_DATABASE_URL to postgresql://…"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
