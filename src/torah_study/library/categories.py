"""Category names compared across Sefaria's spellings.

Sefaria renamed its top category "Tanach" to "Tanakh"; a library ingested
from an older export stores one spelling and a newer one the other. Code
that matches categories (the dense scope, the canon order, filters) compares
them through :func:`category_key`, so both spellings name the same books.
"""

from __future__ import annotations

from collections.abc import Iterable

# Spellings of one category, mapped to the form they are compared in.
_EQUIVALENT = {"tanach": "tanakh"}


def category_key(name: str) -> str:
    """Return the spelling-independent key of a category or title name."""
    key = " ".join(name.casefold().split())
    return _EQUIVALENT.get(key, key)


def same_category(a: str, b: str) -> bool:
    """Tell whether two category names are spellings of the same category."""
    return category_key(a) == category_key(b)


def names_any(names: Iterable[str], wanted: Iterable[str]) -> bool:
    """Tell whether any of ``names`` is a spelling of any of ``wanted``."""
    keys = {category_key(name) for name in names}
    return any(category_key(name) in keys for name in wanted)
