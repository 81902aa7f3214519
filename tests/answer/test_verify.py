from torah_study.answer.verify import cited_numbers, quoted_spans, split_sentences


def test_cited_numbers_lists_and_ranges() -> None:
    assert cited_numbers("See [1], [2, 3] and [4-6].") == [1, 2, 3, 4, 5, 6]


def test_quoted_spans_all_quote_styles() -> None:
    text = 'He said "a b c" and \u201cd e f\u201d and \u05f4ג ד ה\u05f4'
    assert quoted_spans(text) == ["a b c", "d e f", "ג ד ה"]


def test_split_sentences_keeps_quotes_whole() -> None:
    pieces = split_sentences("It says \u201cGo. Now.\u201d Then stop. End")
    assert pieces == ["It says \u201cGo. Now.\u201d Then stop. ", "End"]


def test_split_sentences_joins_back() -> None:
    text = "One. Two!\nThree? Four"
    assert "".join(split_sentences(text)) == text


def test_wide_citation_range_not_expanded() -> None:
    assert cited_numbers("See [1-2000000000].") == [1, 2000000000]


def test_colon_does_not_split_sentences() -> None:
    text = "All may eat it: even on fast days: said the sages."
    assert split_sentences(text) == [text]


def test_hebrew_abbreviation_is_not_a_quote() -> None:
    text = 'רש"י מסביר את הזמן [2]. חז"ל קבעו כך [4].'
    assert split_sentences(text) == ['רש"י מסביר את הזמן [2]. ', 'חז"ל קבעו כך [4].']


def _verifier(catalog):  # type: ignore[no-untyped-def]
    from torah_study.answer.verify import Verifier

    return Verifier(catalog, [], require_citations=True)


def test_absence_claim_about_a_held_work_is_removed(catalog) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(catalog)
    for sentence in (
        "The library does not contain Pirkei Avot, so this cannot be answered.",
        "Tehillim is not in the library.",
        "אין בספרייה את ספר שמות.",
    ):
        reason = verifier.check(sentence)
        assert reason is not None and "but the library holds it" in reason, sentence


def test_true_absence_claim_needs_no_citation(catalog) -> None:  # type: ignore[no-untyped-def]
    verifier = _verifier(catalog)
    assert verifier.check("The library does not contain the Tanya.") is None
    assert verifier.check("ספר התניא אינו בספרייה.") is None
    # Other uncited claims still need a citation.
    assert verifier.check("The Tanya teaches that every Jew has two souls.") == (
        "makes a claim without citing a source"
    )
