"""The dense scope: which books get vectors, and checking its names."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence

from torah_study.config import DEFAULT_DENSE_SCOPE
from torah_study.library.catalog import Book, Catalog
from torah_study.library.categories import names_any

logger = logging.getLogger(__name__)


class ScopeError(ValueError):
    """Raised when the dense scope names no book or category of the library."""


def in_scope(book: Book, scope: Sequence[str]) -> bool:
    """Tell whether ``scope`` names a book by title or category ('*' = all).

    A commentary is in scope only when named itself, by its commentator or by
    "Commentary": its categories include the base book's ("Torah"), and
    naming Torah should not pull in every comment on it.
    """
    if "*" in scope:
        return True
    if book.commentator:
        names = {book.title, book.commentator, "Commentary"}
    else:
        names = {book.title, *book.categories}
    # Category spellings differ between exports ("Tanach", "Tanakh").
    return names_any(names, scope)


def scope_names(catalog: Catalog) -> set[str]:
    """Return every name a scope may use: titles, categories and commentators."""
    names = {"*", "Commentary"}
    for book in catalog:
        names.add(book.title)
        names.update(book.categories)
        if book.commentator:
            names.add(book.commentator)
    return names


def check_scope(scope: Sequence[str], catalog: Catalog, *, strict: bool = True) -> None:
    """Raise ScopeError for a scope name that matches nothing in ``catalog``.

    The error lists close matches. Names of the default scope are exempt and
    only logged, because a library ingested with ``--books`` lacks most of it.
    Without ``strict`` every unknown name is only logged as a warning, for a
    library limited to some books on purpose.
    """
    known = scope_names(catalog)
    problems: list[str] = []
    for name in scope:
        if names_any([name], known):
            continue
        if names_any([name], DEFAULT_DENSE_SCOPE):
            logger.info("Dense scope name %r matches no book of this library", name)
            continue
        close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
        hint = f" (close matches: {', '.join(close)})" if close else ""
        problems.append(f"{name!r}{hint}")
    if not problems:
        return
    message = (
        "Unknown dense scope name: "
        + "; ".join(problems)
        + ". Use book titles, category names, commentators or '*'."
    )
    if strict:
        raise ScopeError(message)
    logger.warning("%s", message)


def books_in_scope(catalog: Catalog, scope: Sequence[str]) -> list[str]:
    """Return the titles of the catalog's books in ``scope``, in catalog order."""
    return [book.title for book in catalog if in_scope(book, scope)]
