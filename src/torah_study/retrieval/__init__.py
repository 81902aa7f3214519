"""Question → ranked, gated passages."""
