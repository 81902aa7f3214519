"""User accounts: passwords, tokens, email codes and rate limits."""
