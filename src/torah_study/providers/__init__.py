"""Shared fault handling for remote providers: circuit breakers."""
