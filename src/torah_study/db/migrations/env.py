"""Alembic environment: migrations run on the engine the service opened."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from torah_study.db.models import Base

# A fixed key for the PostgreSQL advisory lock that keeps two API processes
# starting together from running the same migration twice.
MIGRATION_LOCK = 7_316_220_251

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    raise RuntimeError("Run migrations through `torah-study db upgrade`.")

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK}
        )
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK}
            )
            connection.commit()
