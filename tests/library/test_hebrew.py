from torah_study.library.hebrew import (
    normalize,
    prefix_variants,
    search_text,
    strip_html,
    strip_marks,
)


def test_strip_marks_removes_niqqud_and_teamim() -> None:
    verse = "בְּרֵאשִׁ֖ית בָּרָ֣א אֱלֹהִ֑ים"
    assert strip_marks(verse) == "בראשית ברא אלהים"


def test_maqaf_and_sof_pasuq_become_spaces() -> None:
    text = "וַֽיְהִי־אֽוֹר׃"
    assert strip_marks(text).split() == ["ויהי", "אור"]


def test_gershayim_and_quotes_unified() -> None:
    assert normalize('רש"י') == normalize("רש״י") == "רשי"
    assert normalize("ע׳ ז") == normalize("ע' ז")


def test_paragraph_marks_dropped() -> None:
    assert normalize("וַיְכֻלּ֛וּ הַשָּׁמַ֥יִם (פ)") == "ויכלו השמים"


def test_html_stripped_and_entities_decoded() -> None:
    assert strip_html("<b>In</b> the&amp;<br>beginning") == "In the& beginning"


def test_english_lowercased_and_punctuation_removed() -> None:
    assert normalize("And God said: 'Let there be light.'") == (
        "and god said let there be light"
    )


def test_prefix_variants_strip_up_to_three_letters() -> None:
    assert prefix_variants("והארץ") == ["הארץ", "ארץ"]
    assert prefix_variants("ארץ") == []


def test_prefix_variants_keep_three_letter_stem() -> None:
    # "משה" would lose a root letter, so it gets no variant.
    assert prefix_variants("משה") == []


def test_search_text_matches_prefixed_forms() -> None:
    tokens = search_text("וְהָאָ֗רֶץ הָיְתָ֥ה תֹ֙הוּ֙").split()
    assert "ארץ" in tokens
    assert "והארץ" in tokens
