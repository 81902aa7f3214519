"""Conversation titles from first messages, with refs checked in the real catalog."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torah_study.conversations.titles import ELLIPSIS, make_title
from torah_study.library.catalog import Catalog
from torah_study.library.export import TextFile

pytestmark = pytest.mark.corpus

COMBINING = ("Mn", "Mc", "Me")


def _is_combining(char: str) -> bool:
    return unicodedata.category(char) in COMBINING


def test_hebrew_message_stays_hebrew(catalog: Catalog) -> None:
    title = make_title("מה אומר רש״י על בראשית א:א?", catalog)
    assert title == "מה אומר רש״י על בראשית א:א"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Genesis 1:1", "Genesis 1:1"),
        ("gen 1:1", "Genesis 1:1"),
        ("  Gen. 22:2?  ", "Genesis 22:2"),
        ("psalm 23", "Psalms 23"),
        ("Berakhot 2a", "Berakhot 2a"),
        ("בראשית א:א", "בראשית א:א"),
        ('"בראשית כב:ב"', "בראשית כב:ב"),
        ("ברכות ב.", "ברכות ב."),
        ("ברכות ב:", "ברכות ב:"),
        ("Shalom! Genesis 1:1", "Genesis 1:1"),
    ],
)
def test_ref_message_becomes_canonical_ref(
    catalog: Catalog, message: str, expected: str
) -> None:
    assert make_title(message, catalog) == expected


def test_ref_message_without_catalog_is_text() -> None:
    assert make_title("gen 1:1") == "Gen 1:1"


def test_missing_ref_is_text(catalog: Catalog) -> None:
    assert make_title("genesis 51:1", catalog) == "Genesis 51:1"


def test_bare_alias_is_not_expanded(catalog: Catalog) -> None:
    assert make_title("Dan", catalog) == "Dan"


@pytest.mark.parametrize(
    "message",
    [
        "hi",
        "Hello!",
        "hey there 👋",
        "Good morning, Rabbi",
        "good evening!!",
        "Thank you so much!",
        "thanks",
        "Shalom",
        "shalom aleichem!",
        "Boker tov 🙂",
        "שלום",
        "שלום עליכם!",
        "שָׁלוֹם",
        "בוקר טוב",
        "ערב טוב לכולם",
        "תודה רבה!",
        "היי 😊",
        "שלום ותודה",
    ],
)
def test_greeting_alone_has_no_title(catalog: Catalog, message: str) -> None:
    assert make_title(message, catalog) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Shalom! What does Rashi say on Genesis 1:1?",
            "What does Rashi say on Genesis 1:1",
        ),
        ("Hi there, what is the Shema?", "What is the Shema"),
        ("hello what is the Shema?", "What is the Shema"),
        ("שלום, מה אומר רש״י על בראשית א:א?", "מה אומר רש״י על בראשית א:א"),
        ("בוקר טוב 🙂 איפה כתוב לכבד את ההורים?", "איפה כתוב לכבד את ההורים"),
        ("What is Shabbat? Thanks!", "What is Shabbat"),
        ("מה זה שבת? תודה רבה", "מה זה שבת"),
    ],
)
def test_greeting_removed_before_content(
    catalog: Catalog, message: str, expected: str
) -> None:
    assert make_title(message, catalog) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Shalom means peace", "Shalom means peace"),
        (
            "Thanks for the answer, what about Exodus?",
            "Thanks for the answer, what about Exodus",
        ),
        ("Hello world", "Hello world"),
    ],
)
def test_greeting_word_in_content_kept(
    catalog: Catalog, message: str, expected: str
) -> None:
    assert make_title(message, catalog) == expected


@pytest.mark.parametrize(
    "message", ["", "   ", "\n\t ", "\u200b", "?!", "…", "😊", "\x00\x07"]
)
def test_empty_message_has_no_title(message: str) -> None:
    assert make_title(message) is None


def test_whitespace_collapsed_and_controls_dropped() -> None:
    message = "  what\tis\u00a0the\n\n Shema\x07?\u200f "
    assert make_title(message) == "What is the Shema"


def test_surrounding_quotes_trimmed() -> None:
    assert make_title('"Where is the Shema?"') == "Where is the Shema"
    assert make_title("(see Genesis 1:1)") == "See Genesis 1:1"


def test_inner_quotes_and_brackets_kept() -> None:
    assert make_title('What does "Shema" mean?') == 'What does "Shema" mean'
    assert make_title("What is the Shema (Deuteronomy 6:4)?") == (
        "What is the Shema (Deuteronomy 6:4)"
    )


def test_hebrew_numeral_mark_kept() -> None:
    assert make_title("מה כתוב בפרק ג׳") == "מה כתוב בפרק ג׳"


def test_hebrew_daf_mark_kept_after_text(catalog: Catalog) -> None:
    assert make_title("מה כתוב בברכות ב:", catalog) == "מה כתוב בברכות ב:"
    assert make_title("מה כתוב בברכות ב:") == "מה כתוב בברכות ב"


def test_latin_first_letter_upper_cased() -> None:
    assert make_title("why do we light candles?") == "Why do we light candles"
    assert make_title("ça va") == "Ça va"


def test_exact_limit_kept_whole() -> None:
    message = "Which verse of the Torah commands honoring father and mother"
    assert len(message) == 60
    assert make_title(message) == message
    assert make_title(message + "?") == message
    assert make_title(message, limit=59) == message[:-7] + ELLIPSIS


def test_one_over_limit_cut_at_space() -> None:
    message = "Which verse of the Torah commands honoring father and mother"
    assert make_title(message + " too") == message + ELLIPSIS
    assert make_title(message + "s") == message[:-7] + ELLIPSIS


def test_trailing_comma_removed_before_ellipsis() -> None:
    message = "Which verse of the Torah commands honoring father, and mother"
    assert make_title(message, limit=52) == (
        "Which verse of the Torah commands honoring father" + ELLIPSIS
    )


def test_long_english_message_cut_at_word(
    text_files: dict[str, list[TextFile]],
) -> None:
    version = "The Holy Scriptures: A New Translation (JPS 1917)"
    (file,) = [f for f in text_files["Genesis"] if f.version_title == version]
    message = " ".join(file.text[0])[:600]
    assert len(message) == 600

    title = make_title(message)

    assert title is not None
    assert title == "In the beginning God created the heaven and the earth. Now…"
    assert len(title) <= 61
    assert title.endswith(ELLIPSIS)
    head = title[:-1]
    collapsed = " ".join(message.split())
    assert collapsed.startswith(head)
    assert collapsed[len(head)] == " "


def test_long_hebrew_message_cut_at_word(
    text_files: dict[str, list[TextFile]],
) -> None:
    (file,) = [
        f for f in text_files["Genesis"] if f.version_title == "Tanach with Nikkud"
    ]
    first_verse = file.text[0][0]
    message = " ".join(file.text[0])[:600]
    assert len(message) == 600
    assert any(_is_combining(char) for char in message)
    # Genesis 1:1 is 58 code points, the last of them a sof pasuq.
    assert len(first_verse) == 58
    assert first_verse.endswith("\u05c3")

    title = make_title(message)

    assert title is not None
    assert title == first_verse[:-1] + ELLIPSIS
    assert len(title) <= 61
    assert title.endswith(ELLIPSIS)
    head = title[:-1]
    collapsed = " ".join(message.split())
    assert collapsed.startswith(head)
    assert collapsed[len(head) : len(head) + 2] == "\u05c3 "
    for index, char in enumerate(title):
        if _is_combining(char):
            assert index > 0
            assert title[index - 1] != " "


def test_long_first_word_keeps_niqqud_with_letter() -> None:
    # "בְּ" is bet with dagesh and sheva: three code points, one letter.
    assert make_title("בְּרֵאשִׁית", limit=4) == "בְּ" + ELLIPSIS
    assert make_title("בְּרֵאשִׁית", limit=3) == "בְּ" + ELLIPSIS
    # A letter with more marks than the limit keeps those that fit.
    assert make_title("בְּרֵאשִׁית", limit=2) == "בְּרֵאשִׁית"[:2] + ELLIPSIS


def test_long_first_word_keeps_emoji_whole() -> None:
    thumbs = "\U0001f44d\U0001f3fd"  # thumbs up with a skin tone
    flag = "\U0001f1ee\U0001f1f1"  # two regional indicators
    assert make_title("a" + thumbs * 10, limit=4) == "A" + thumbs + ELLIPSIS
    assert make_title("a" + flag * 10, limit=4) == "A" + flag + ELLIPSIS
    assert make_title("a" + flag * 10, limit=3) == "A" + flag + ELLIPSIS


def test_surrogate_pair_joined() -> None:
    assert make_title("ab\ud83d\ude00cd") == "Ab\U0001f600cd"
    assert make_title("ab\udc00cd") == "Abcd"


def test_orphan_combining_mark_dropped() -> None:
    assert make_title("\u05b0abc") == "Abc"
    assert make_title("what is it? \u05b0") == "What is it"


def test_invalid_limit_rejected() -> None:
    with pytest.raises(ValueError, match="limit"):
        make_title("Genesis", limit=0)


def _check_title(title: str | None, limit: int) -> None:
    if title is None:
        return
    assert title
    assert len(title) <= limit + 1
    assert title == title.strip()
    assert not _is_combining(title[0])


@settings(max_examples=400, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=1, max_value=80))
def test_any_text_gives_short_clean_title(text: str, limit: int) -> None:
    _check_title(make_title(text, limit=limit), limit)


PIECES = [
    "Genesis", "gen", "1:1", "22:2", "2a", "51:1", "Berakhot", "בראשית", "ברכות",
    "א:א", "ב.", "ב:", "כב:ב", "shalom", "hi", "שלום", "תודה", "?", "!", ",",
    '"', "(", ")", "\u05b0", "\u200d", "😊", "\u200f", "\t",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(PIECES), max_size=8),
    limit=st.integers(min_value=1, max_value=80),
)
def test_ref_like_text_gives_short_clean_title(
    catalog: Catalog, words: list[str], limit: int
) -> None:
    _check_title(make_title(" ".join(words), catalog, limit), limit)
