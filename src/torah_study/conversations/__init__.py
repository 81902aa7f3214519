"""Saved conversations: titles, follow-up rewriting, storage and streamed answers."""
