"""The PostgreSQL text search configuration for Hebrew and English keyword search.

The configuration ``torah_study_search`` sends English words (the parser's
``asciiword``) to the ``english`` Snowball stemmer. Hebrew words go through
an ``unaccent`` dictionary whose rules remove niqqud and cantillation, then
an ``ispell`` dictionary built from Debian's ``hunspell-he`` that reduces
prefixed and inflected forms to their stem, then ``simple``.

The hunspell-he files are AGPL-3 and are never shipped with this package:
``install_dictionary_files`` copies them from the operating system into the
server's ``tsearch_data`` folder. Without them the configuration is built
from unaccent and ``simple`` only, and a warning is logged.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

logger = logging.getLogger(__name__)

CONFIGURATION = "torah_study_search"
RULES_NAME = "torah_study_niqqud"
ISPELL_NAME = "he_il"
HUNSPELL_DIR = Path("/usr/share/hunspell")
HUNSPELL_FILES = {
    "he_IL.aff": f"{ISPELL_NAME}.affix",
    "he_IL.dic": f"{ISPELL_NAME}.dict",
}

# Hebrew points and accents, removed from inside words. Maqaf (U+05BE),
# paseq (U+05C0), sof pasuq (U+05C3) and nun hafukha (U+05C6) separate words,
# so they stay for the parser to split on.
_KEPT_MARKS = {0x05BE, 0x05C0, 0x05C3, 0x05C6}
NIQQUD = tuple(chr(c) for c in range(0x0591, 0x05C8) if c not in _KEPT_MARKS)


@dataclass(frozen=True)
class SearchSetup:
    """The files a text search configuration can be built from."""

    hebrew_dictionary: bool
    rules_file: bool


def niqqud_rules() -> str:
    """Return the unaccent rules file: one mark a line, each mapped to nothing."""
    return "".join(f"{mark}\n" for mark in NIQQUD)


def server_sharedir(connection: psycopg.Connection[tuple[object, ...]]) -> Path | None:
    """Return the server's share folder, or None when this role may not read it."""
    try:
        with connection.transaction():
            row = connection.execute(
                "SELECT setting FROM pg_config WHERE name = 'SHAREDIR'"
            ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return Path(str(row[0])) if row else None


def install_dictionary_files(
    sharedir: Path, hunspell_dir: Path = HUNSPELL_DIR
) -> SearchSetup:
    """Write the niqqud rules and copy hunspell-he into ``sharedir/tsearch_data``.

    Works only where the server's share folder is on this machine and
    writable (a local or embedded server). Files already in place are kept.
    """
    folder = sharedir / "tsearch_data"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Text search folder not found: {folder}. Run this on the database "
            "server's machine, or install the files there by hand."
        )
    rules = folder / f"{RULES_NAME}.rules"
    if not rules.exists():
        rules.write_text(niqqud_rules(), encoding="utf-8")
    missing = [name for name in HUNSPELL_FILES if not (hunspell_dir / name).exists()]
    if missing:
        logger.warning(
            "hunspell-he not found in %s (missing %s): Hebrew keyword search will "
            "not reduce prefixed forms; install the Debian package hunspell-he",
            hunspell_dir,
            ", ".join(missing),
        )
    else:
        for source, target in HUNSPELL_FILES.items():
            destination = folder / target
            if not destination.exists():
                shutil.copyfile(hunspell_dir / source, destination)
    return SearchSetup(
        hebrew_dictionary=not missing and (folder / f"{ISPELL_NAME}.dict").exists(),
        rules_file=True,
    )


def create_configuration(
    connection: psycopg.Connection[tuple[object, ...]],
    ispell_name: str = ISPELL_NAME,
    *,
    upgrade: bool = False,
) -> bool:
    """Create the dictionaries and the configuration unless they exist.

    Returns whether the Hebrew ispell dictionary (the files ``ispell_name``
    .dict and .affix in ``tsearch_data``) is part of it. ``upgrade`` adds
    the dictionary to a configuration built without it; stored ``tsvector``
    values then need recomputing. Needs the
    ``unaccent`` extension and the rules file (see
    ``install_dictionary_files``). The caller commits.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", ispell_name):
        raise ValueError(f"Invalid dictionary file name {ispell_name!r}")
    exists = connection.execute(
        "SELECT 1 FROM pg_ts_config WHERE cfgname = %s", (CONFIGURATION,)
    ).fetchone()
    if exists:
        if has_hebrew_dictionary(connection) or not upgrade:
            return has_hebrew_dictionary(connection)
        # Built before hunspell-he was installed: add the dictionary now if
        # its files have appeared since.
        if not _create_ispell(connection, ispell_name):
            return False
        _map_words(connection, hebrew=True)
        logger.info("Added the Hebrew dictionary to %s", CONFIGURATION)
        return True
    connection.execute(
        f"CREATE TEXT SEARCH DICTIONARY torah_study_unaccent "
        f"(TEMPLATE = unaccent, RULES = '{RULES_NAME}')"
    )
    hebrew = _create_ispell(connection, ispell_name)
    connection.execute(
        f"CREATE TEXT SEARCH CONFIGURATION {CONFIGURATION} (COPY = simple)"
    )
    _map_words(connection, hebrew)
    connection.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {CONFIGURATION} "
        "ALTER MAPPING FOR asciiword, asciihword, hword_asciipart WITH english_stem"
    )
    if not hebrew:
        logger.warning(
            "Created %s without the Hebrew dictionary: prefixed Hebrew forms match "
            "only through the application's prefix variants",
            CONFIGURATION,
        )
    return hebrew


def _map_words(
    connection: psycopg.Connection[tuple[object, ...]], hebrew: bool
) -> None:
    """Map the parser's non-ASCII word tokens to the Hebrew dictionary chain."""
    chain = "torah_study_unaccent, simple"
    if hebrew:
        chain = "torah_study_unaccent, torah_study_hebrew, simple"
    connection.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {CONFIGURATION} "
        f"ALTER MAPPING FOR word, hword, hword_part WITH {chain}"
    )


def has_hebrew_dictionary(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = connection.execute(
        "SELECT 1 FROM pg_ts_dict WHERE dictname = 'torah_study_hebrew'"
    ).fetchone()
    return row is not None


def _create_ispell(
    connection: psycopg.Connection[tuple[object, ...]], ispell_name: str
) -> bool:
    """Create the ispell dictionary; return False when its files are missing."""
    try:
        with connection.transaction():
            connection.execute(
                "CREATE TEXT SEARCH DICTIONARY torah_study_hebrew (TEMPLATE = ispell, "
                f"DictFile = {ispell_name}, AffFile = {ispell_name})"
            )
    except (psycopg.errors.UndefinedFile, psycopg.errors.ConfigFileError) as error:
        logger.warning("The Hebrew ispell dictionary is not installed: %s", error)
        return False
    return True
