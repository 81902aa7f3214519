import pytest

from torah_study.library.catalog import Catalog
from torah_study.library.refs import (
    Ref,
    RefError,
    daf_to_position,
    from_hebrew_numeral,
    position_to_daf,
    to_hebrew_numeral,
)

pytestmark = pytest.mark.corpus


@pytest.mark.parametrize(
    ("number", "letters"),
    [(1, "א"), (15, "טו"), (16, "טז"), (19, "יט"), (144, "קמד"), (613, "תריג"),
     (500, "תק"), (770, "תשע")],
)  # fmt: skip
def test_hebrew_numerals_round_trip(number: int, letters: str) -> None:
    assert to_hebrew_numeral(number) == letters
    assert from_hebrew_numeral(letters) == number


def test_hebrew_numeral_ignores_gershayim() -> None:
    assert from_hebrew_numeral("קמ״ד") == 144
    assert from_hebrew_numeral("ה'") == 5


def test_invalid_hebrew_numeral_rejected() -> None:
    with pytest.raises(RefError):
        from_hebrew_numeral("abc")


def test_daf_positions() -> None:
    assert daf_to_position("2a") == 3
    assert daf_to_position("2b") == 4
    assert position_to_daf(3) == "2a"
    assert position_to_daf(128) == "64b"


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Genesis 1:1", "Genesis 1:1"),
        ("genesis 1:1", "Genesis 1:1"),
        ("Gen. 1:1", "Genesis 1:1"),
        ("Bereshit 1.1", "Genesis 1:1"),
        ("Genesis 1", "Genesis 1"),
        ("Genesis 1:1-3", "Genesis 1:1-3"),
        ("Genesis 1:30-2:3", "Genesis 1:30-2:3"),
        ("Mishnah Berakhot 1:1", "Mishnah Berakhot 1:1"),
        ("Pirkei Avot 2:16", "Pirkei Avot 2:16"),
        ("Berakhot 2a:3", "Berakhot 2a:3"),
        ("Berakhot 2b", "Berakhot 2b"),
        ("Berakhot 2a-3b", "Berakhot 2a-3b"),
        ("Rashi on Genesis 1:1:2", "Rashi on Genesis 1:1:2"),
        ("Psalm 137:1", "Psalms 137:1"),
    ],
)
def test_parse_and_format_english(catalog: Catalog, text: str, normal: str) -> None:
    assert catalog.parse(text).normal() == normal


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("בראשית א:א", "Genesis 1:1"),
        ("בראשית א, ג", "Genesis 1:3"),
        ("ויקרא יט:יח", "Leviticus 19:18"),
        ("ברכות ב.", "Berakhot 2a"),
        ("ברכות ב:", "Berakhot 2b"),
        ('ברכות ב ע"ב', "Berakhot 2b"),
        ("ברכות דף ג.", "Berakhot 3a"),
        ("תהלים קלז:א", "Psalms 137:1"),
    ],
)
def test_parse_hebrew(catalog: Catalog, text: str, normal: str) -> None:
    assert catalog.parse(text).normal() == normal


def test_format_hebrew(catalog: Catalog) -> None:
    assert catalog.parse("Genesis 1:1").hebrew("בראשית") == "בראשית א:א"
    assert catalog.parse("Leviticus 19:18").hebrew("ויקרא") == "ויקרא יט:יח"
    assert catalog.parse("Berakhot 2a").hebrew("ברכות") == "ברכות ב."
    assert catalog.parse("Berakhot 2b:3").hebrew("ברכות") == "ברכות ב: ג"
    assert catalog.parse("Genesis 1:1-3").hebrew("בראשית") == "בראשית א:א-ג"


def test_talmud_positions_start_at_1a(catalog: Catalog) -> None:
    ref = catalog.parse("Berakhot 2a:3")
    assert ref.start == (3, 3)
    assert ref.talmud


def test_range_end_fills_from_start(catalog: Catalog) -> None:
    ref = catalog.parse("Genesis 1:30-2:3")
    assert ref.start == (1, 30)
    assert ref.end == (2, 3)
    assert ref.contains(catalog.parse("Genesis 2:1"))
    assert not ref.contains(catalog.parse("Genesis 2:4"))


@pytest.mark.parametrize(
    ("text", "section"),
    [
        ("Genesis 1:3", "Genesis 1"),
        ("Genesis 1:2-4", "Genesis 1"),
        ("Genesis 1:30-2:3", "Genesis 1-2"),
        ("Genesis 1", "Genesis 1"),
        ("Genesis 1-2", "Genesis 1-2"),
        ("Genesis", "Genesis"),
        ("Berakhot 2a:3", "Berakhot 2a"),
        ("Berakhot 2a", "Berakhot 2a"),
        ("Rashi on Genesis 1:1:2", "Rashi on Genesis 1:1"),
        ("Rashi on Genesis 1:1", "Rashi on Genesis 1:1"),
    ],
)
def test_section_drops_the_segment_level(
    catalog: Catalog, text: str, section: str
) -> None:
    ref = catalog.parse(text)
    enclosing = ref.section(catalog.books[ref.book].depth)
    assert enclosing.normal() == section
    assert enclosing.contains(ref)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Genesis 51:1", "Genesis has 50 chapters"),
        ("Genesis 1:32", "Genesis 1 has 31 verses"),
        ("Exodus 45:2", "Exodus has 40 chapters"),
        ("Berakhot 70a", "the tractate ends at 64a"),
        ("Berakhot 1a", "no text"),
        ("Genesis 0:1", "Invalid number .0."),
    ],
)
def test_out_of_range_refs_explain_the_limit(
    catalog: Catalog, text: str, message: str
) -> None:
    with pytest.raises(RefError, match=message):
        catalog.parse(text)


def test_unknown_book_rejected(catalog: Catalog) -> None:
    with pytest.raises(RefError, match="Unknown book"):
        catalog.parse("Tanya 1:1")


def test_backwards_range_rejected(catalog: Catalog) -> None:
    with pytest.raises(RefError, match="before the start"):
        catalog.parse("Genesis 2:3-1:1")


def test_find_refs_in_questions(catalog: Catalog) -> None:
    found = catalog.find_refs("Show me Genesis 1:1-3 please")
    assert found == [catalog.parse("Genesis 1:1-3")]


def test_find_refs_adds_commentary(catalog: Catalog) -> None:
    found = catalog.find_refs("What does Rashi say on Genesis 1:5?")
    assert [r.normal() for r in found if isinstance(r, Ref)] == [
        "Rashi on Genesis 1:5",
        "Genesis 1:5",
    ]


def test_find_refs_reports_invalid(catalog: Catalog) -> None:
    (found,) = catalog.find_refs("What does Exodus 45:2 say?")
    assert isinstance(found, RefError)
    assert "Exodus has 40 chapters" in str(found)


def test_find_refs_ignores_verse_text_after_title(catalog: Catalog) -> None:
    # "ברא" is a word, not a numeral: the question quotes Genesis 1:1.
    assert catalog.find_refs("בראשית ברא אלהים את השמים ואת הארץ") == []


def test_find_refs_hebrew_with_prefix(catalog: Catalog) -> None:
    found = catalog.find_refs("מה כתוב בברכות ב.?")
    assert found == [catalog.parse("Berakhot 2a")]


def test_title_only_is_not_a_lookup(catalog: Catalog) -> None:
    assert catalog.find_refs("What is the first story in Genesis?") == []


def test_find_hebrew_verse_ref(catalog: Catalog) -> None:
    assert catalog.find_refs("בראשית א:א") == [catalog.parse("Genesis 1:1")]
    assert catalog.find_refs("מה כתוב בתהלים קיט:קעו?") == [
        catalog.parse("Psalms 119:176")
    ]


def test_find_hebrew_talmud_line(catalog: Catalog) -> None:
    assert catalog.find_refs("ברכות ב: ג") == [catalog.parse("Berakhot 2b:3")]


def test_commentators_are_those_of_real_commentaries(catalog: Catalog) -> None:
    names = catalog.commentators()
    assert "Rashi" in names
    assert "Mishneh Torah, Rest" not in names
    assert all(
        any(
            book.commentator == name and book.base_title in catalog.books
            for book in catalog.books.values()
        )
        for name in names
    )


@pytest.mark.parametrize(
    "text",
    [
        'רש"י על בראשית א:א',
        "רש״י על בראשית א:א",
        "רשי על בראשית א:א",
    ],
)
def test_hebrew_commentary_title_matches_with_any_gershayim(
    catalog: Catalog, text: str
) -> None:
    [found] = catalog.find_refs(text)
    assert isinstance(found, Ref)
    assert found.normal() == "Rashi on Genesis 1:1"


def test_hebrew_chapter_and_verse_with_a_comma(catalog: Catalog) -> None:
    [found] = catalog.find_refs("שמות כ, יב")
    assert isinstance(found, Ref) and found.normal() == "Exodus 20:12"
    # A doubled apostrophe is gershayim: י''ח is 18, not 10.
    [found] = catalog.find_refs("ויקרא י''ח")
    assert isinstance(found, Ref) and found.normal() == "Leviticus 18"


def test_direction_marks_are_ignored(catalog: Catalog) -> None:
    assert catalog.parse("\u200fבראשית א:א\u200f").normal() == "Genesis 1:1"
