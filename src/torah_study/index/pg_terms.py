"""Term statistics of the PostgreSQL store, for BM25 keyword ranking.

``ts_rank`` has no inverse document frequency: a passage that contains a
word found in a third of the library scores like one that contains a rare
name. ``refresh`` stores each lexeme's document frequency (from ``ts_stat``)
with the library's size and mean segment length. ``lookup`` returns them for
the words of a query, so that ``pg_queries.bm25_query`` can weight each
lexeme by its BM25 IDF, as LanceDB's full-text index does.

The statistics are a snapshot taken by ``PostgresStore.finish``. Rows
written later are searched, and a lexeme missing from the snapshot counts
as found in no segment (the highest IDF).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from torah_study.index.pg_search import CONFIGURATION

TERMS_TABLE = "retrieval_terms"
TOTALS_TABLE = "retrieval_term_totals"

TABLES_SQL = (
    f"""CREATE TABLE IF NOT EXISTS {TERMS_TABLE} (
        lexeme text PRIMARY KEY,
        documents integer NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {TOTALS_TABLE} (
        documents bigint NOT NULL,
        average_length float8 NOT NULL
    )""",
)


@dataclass(frozen=True)
class Term:
    """A lexeme of a query and the number of segments that contain it."""

    lexeme: str
    documents: int


@dataclass(frozen=True)
class Totals:
    """The library's segment count and mean segment length in lexemes."""

    documents: int
    average_length: float

    def idf(self, documents: int) -> float:
        """BM25's inverse document frequency, never below zero."""
        return math.log(1.0 + (self.documents - documents + 0.5) / (documents + 0.5))


def refresh(connection: psycopg.Connection[tuple[object, ...]]) -> int:
    """Recompute the term statistics in one transaction; return the lexeme count.

    ``ts_stat`` reads every ``tsvector`` once, so this runs after an
    ingestion, not per write. Readers see the old statistics until the
    transaction commits.
    """
    with connection.transaction():
        for statement in TABLES_SQL:
            connection.execute(statement)
        connection.execute(f"TRUNCATE {TERMS_TABLE}, {TOTALS_TABLE}")
        cursor = connection.execute(
            f"""INSERT INTO {TERMS_TABLE} (lexeme, documents)
            SELECT word, ndoc FROM ts_stat(
                'SELECT search_vector FROM retrieval_segments')"""
        )
        lexemes = cursor.rowcount
        # A segment's length is its number of distinct lexemes, which
        # ``length(tsvector)`` reads without expanding the vector.
        connection.execute(
            f"""INSERT INTO {TOTALS_TABLE} (documents, average_length)
            SELECT count(*), coalesce(avg(length(search_vector)), 0)::float8
            FROM retrieval_segments"""
        )
    return lexemes


def tables_exist(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (TOTALS_TABLE,)
    ).fetchone()
    return bool(row and row[0])


def lookup(
    connection: psycopg.Connection[tuple[object, ...]],
    queries: Sequence[str],
) -> tuple[Totals | None, list[list[Term]]]:
    """Return the totals and, for each query, its lexemes with their counts.

    The totals are None until ``refresh`` has run. Each query's lexemes are
    listed once, in the order of the words that give them.
    """
    row = connection.execute(
        f"SELECT documents, average_length FROM {TOTALS_TABLE}"
    ).fetchone()
    if row is None:
        return None, [[] for _ in queries]
    totals = Totals(int(str(row[0])), float(str(row[1])))
    indexes: list[int] = []
    words: list[str] = []
    for index, query in enumerate(queries):
        for word in dict.fromkeys(query.split()):
            indexes.append(index)
            words.append(word)
    rows = connection.execute(
        f"""SELECT w.query, l.lexeme, coalesce(t.documents, 0)
        FROM unnest(%s::int[], %s::text[]) WITH ORDINALITY AS w(query, word, place)
        CROSS JOIN LATERAL unnest(tsvector_to_array(
            to_tsvector('{CONFIGURATION}', w.word))) AS l(lexeme)
        LEFT JOIN {TERMS_TABLE} AS t ON t.lexeme = l.lexeme
        ORDER BY w.place, l.lexeme""",
        (indexes, words),
    ).fetchall()
    terms: list[dict[str, Term]] = [{} for _ in queries]
    for position, word_lexeme, documents in rows:
        chosen = terms[int(str(position))]
        if str(word_lexeme) not in chosen:
            chosen[str(word_lexeme)] = Term(str(word_lexeme), int(str(documents)))
    return totals, [list(chosen.values()) for chosen in terms]
