"""Open the retrieval store the settings choose."""

from __future__ import annotations

from torah_study.config import Settings
from torah_study.index.base import SegmentStore


def open_store(settings: Settings, dimension: int) -> SegmentStore:
    """Open (and create if needed) the LanceDB or PostgreSQL store.

    Raises ValueError when the postgres backend has no PostgreSQL URL.
    """
    if settings.retrieval_backend == "postgres":
        from torah_study.index.postgres import PostgresStore

        return PostgresStore(
            settings.retrieval_database,
            dimension=dimension,
            pool_size=settings.retrieval_pool_size,
            ef_search=settings.retrieval_ef_search,
        )
    from torah_study.index.lance import LanceStore

    return LanceStore(settings.index_dir, dimension=dimension)
