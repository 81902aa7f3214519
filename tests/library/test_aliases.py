"""Transliterated titles in any common spelling, and titles named in questions."""

from pathlib import Path

import pytest

from torah_study.library.aliases import skeleton, usable
from torah_study.library.catalog import Catalog, read_toc_titles
from torah_study.library.refs import Ref


@pytest.mark.parametrize(
    "spellings",
    [
        ("Bereishit", "Bereshit", "Breishit", "Beresheet", "Bereshis"),
        ("Hilchot Teshuvah", "Hilkhot Teshuva", "Hilchos Teshuvah"),
        ("Berakhot", "Berachot", "Brachos"),
        ("Kohelet", "Koheles", "Qohelet"),
        ("Shulchan Aruch", "Shulchan Arukh"),
        ("Yoreh Deah", "Yoreh De'ah"),
    ],
)
def test_spellings_share_one_key(spellings: tuple[str, ...]) -> None:
    assert len({skeleton(s) for s in spellings}) == 1


def test_different_titles_keep_different_keys() -> None:
    assert skeleton("Shemot") != skeleton("Shmuel")
    assert skeleton("Berakhot") != skeleton("Bereishit")
    assert not usable(skeleton("Job"))
    assert usable(skeleton("Shemos"), before_address=True)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Show me Bereshis 1:1", "Genesis 1:1"),
        ("Tehilim 23", "Psalms 23"),
        ("Shemos 20:12", "Exodus 20:12"),
        ("Brachos 2a", "Berakhot 2a"),
        ("Pirkei Avos 1:14", "Pirkei Avot 1:14"),
    ],
)
def test_refs_with_unlisted_spellings(catalog: Catalog, text: str, normal: str) -> None:
    found = catalog.find_refs(text)
    assert [r.normal() for r in found if isinstance(r, Ref)] == [normal]


def test_commentator_before_an_unlisted_spelling(catalog: Catalog) -> None:
    found = catalog.find_refs("What does Rashi say on Bereshis 1:1?")
    assert [r.normal() for r in found if isinstance(r, Ref)] == [
        "Rashi on Genesis 1:1",
        "Genesis 1:1",
    ]


def test_words_that_are_not_titles_name_no_ref(catalog: Catalog) -> None:
    assert catalog.find_refs("In 1948 the state was founded") == []
    assert catalog.find_refs("Chapter 3 of the story") == []


@pytest.mark.parametrize(
    ("question", "books", "commentators"),
    [
        (
            "What does Hilchot Teshuvah say about confession?",
            ["Mishneh Torah, Repentance"],
            [],
        ),
        ('מה אומר הרמב"ם בהלכות תשובה על וידוי?', ["Mishneh Torah, Repentance"], []),
        ("How does Rashi explain the first verse?", [], ["Rashi"]),
        ("מה אומר רש״י על בריאת העולם?", [], ["Rashi"]),
        ("In Tehillim, who is my shepherd?", ["Psalms"], []),
        ("בספר שמות כתוב", ["Exodus"], []),
        # Titles that are also common words count only as titles.
        ("מה הם הדברים האלה?", [], []),
        ("I lost my job and my dan", [], []),
    ],
)
def test_mentioned_books_and_commentators(
    catalog: Catalog, question: str, books: list[str], commentators: list[str]
) -> None:
    assert catalog.mentioned(question) == (books, commentators)


@pytest.mark.parametrize(
    ("question", "work"),
    [
        (
            "What does the Guide for the Perplexed say about God?",
            "Guide for the Perplexed",
        ),
        ("How does Ramban disagree with Rashi on creation?", "Ramban"),
        ("מה אומר ספר הזוהר על פרשת בראשית?", "Zohar"),
        ("What does the Kuzari say about prophecy?", "Sefer Kuzari"),
        ("What does the Book of Jubal say about flutes?", "The Book of Jubal"),
        # Works the library holds, and names inside its titles, are not outside.
        ("What does the Talmud say about Rosh Hashanah?", None),
        ("What does the Book of Job say about suffering?", None),
        ("How does Rashi explain the first verse?", None),
        ("What does the Shulchan Arukh say about candles?", None),
    ],
)
def test_works_outside_the_library(
    catalog: Catalog, export_dir: Path, question: str, work: str | None
) -> None:
    catalog.set_outside(read_toc_titles(export_dir))
    assert catalog.outside_work(question) == work


def test_outside_work_skips_title_subjects(catalog: Catalog, export_dir: Path) -> None:
    # A library of Mishnah Shabbat alone lacks the Talmud's tractate Shabbat,
    # but a question about Shabbat is about the day.
    small = Catalog([catalog.books["Mishnah Shabbat"]])
    small.set_outside(read_toc_titles(export_dir))
    assert small.outside_work("Can I carry on Shabbat?") is None
    assert small.outside_work("What does the Zohar say about Shabbat?") == "Zohar"


def test_rambam_means_the_mishneh_torah(catalog: Catalog, export_dir: Path) -> None:
    from torah_study.retrieval.query import analyze

    catalog.set_outside(read_toc_titles(export_dir))
    # Sefaria lists "Rambam on …" commentaries the library lacks, but a
    # learner who names Rambam means the Mishneh Torah.
    analysis = analyze("What does Rambam say about confession?", catalog)
    assert analysis.unknown_work is None
    assert analysis.works == ["Mishneh Torah"]
    assert analyze("What does Ramban say about it?", catalog).unknown_work == "Ramban"


@pytest.mark.parametrize(
    "question",
    [
        "Can I carry on Shabbat?",
        "What did Joshua do against Amalek?",
        "What is the meaning of Megillah?",
        "What does the Sefer Torah contain?",
    ],
)
def test_people_and_subjects_are_not_outside_works(
    catalog: Catalog, export_dir: Path, question: str
) -> None:
    small = Catalog([catalog.books["Exodus"], catalog.books["Pirkei Avot"]])
    small.set_outside(read_toc_titles(export_dir))
    assert small.outside_work(question) is None


def test_hebrew_names_of_outside_works(catalog: Catalog, export_dir: Path) -> None:
    catalog.set_outside(read_toc_titles(export_dir))
    assert catalog.outside_work("מה אומר הזוהר על הבריאה?", hebrew=True) == "זוהר"
    assert catalog.outside_work("מה אומר הזוהר על הבריאה?") == "Zohar"
    # Without a word that introduces a work, a one-word Hebrew name is a word.
    assert catalog.outside_work("הזוהר של השמש") is None


def test_outside_name_with_other_gershayim(catalog: Catalog, export_dir: Path) -> None:
    catalog.set_outside(read_toc_titles(export_dir))
    # The title is spelled with ASCII quotes; the question with gershayim.
    assert catalog.outside_work("מה אומר רמב״ן על בראשית?", hebrew=True) == 'רמב"ן'
    assert catalog.outside_work("לפי הרמב״ם, האם יש בחירה?") in (None, "Rambam")
