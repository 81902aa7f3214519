"""Accounts and conversations: SQLAlchemy models, engine set-up and migrations."""
