"""Open the retrieval store the settings choose."""

from __future__ import annotations

from torah_study.config import Settings
from torah_study.index.base import SegmentStore, StoreError


def open_store(settings: Settings, dimension: int) -> SegmentStore:
    """Open (and create if needed) the LanceDB or PostgreSQL store.

    Raises StoreError when the postgres backend has no PostgreSQL URL, cannot
    connect, or finds tables it cannot use.
    """
    if settings.retrieval_backend == "postgres":
        import psycopg
        from sqlalchemy.engine import make_url

        from torah_study.index.postgres import PostgresStore

        try:
            url = settings.retrieval_database
        except ValueError as error:
            raise StoreError(str(error)) from error
        try:
            return PostgresStore(
                url,
                dimension=dimension,
                pool_size=settings.retrieval_pool_size,
                ef_search=settings.retrieval_ef_search,
                build_memory_mb=settings.retrieval_build_memory_mb,
            )
        except psycopg.OperationalError as error:
            shown = make_url(url).render_as_string(hide_password=True)
            first_line = str(error).strip().splitlines()[0] if str(error) else ""
            raise StoreError(
                f"Cannot connect to the retrieval database {shown}: {first_line}"
            ) from error
    from torah_study.index.lance import LanceStore

    return LanceStore(
        settings.index_dir,
        dimension=dimension,
        keep_versions=settings.index_keep_versions,
        nprobes=settings.retrieval_nprobes,
        refine_factor=settings.retrieval_refine_factor,
    )
