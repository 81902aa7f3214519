"""The books the test library is built from, and markers for what tests need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Books ingested for the tests: enough of every kind of text (Tanakh, Mishnah,
# Talmud, commentary) while keeping the embedding stage to about a thousand
# segments.
TEST_BOOKS = (
    "Genesis",
    "Exodus",
    "Leviticus",
    "Deuteronomy",
    "Psalms",
    "Pirkei Avot",
    "Mishnah Berakhot",
    "Mishnah Shabbat",
    "Berakhot",
    "Rashi on Genesis",
)
TEST_DENSE_SCOPE = ("Leviticus", "Pirkei Avot", "Mishnah Berakhot")
# Tests of the Hebrew dictionary in PostgreSQL text search need Debian's
# hunspell-he (`apt-get install hunspell-he`).
# With TORAH_STUDY_REQUIRE_HUNSPELL=1 (as in CI) they run and fail instead.
needs_hunspell = pytest.mark.skipif(
    not Path("/usr/share/hunspell/he_IL.dic").exists()
    and os.environ.get("TORAH_STUDY_REQUIRE_HUNSPELL") != "1",
    reason="hunspell-he is not installed (apt-get install hunspell-he)",
)
