"""Passages to a verified, cited answer."""
