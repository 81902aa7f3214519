"""The answer pipeline with scripted answer models over the real test library."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence

import pytest

from torah_study.answer.llm.base import ChatMessage, ProviderError, Usage
from torah_study.answer.pipeline import (
    AnswerCancelled,
    AnswerPipeline,
    DoneEvent,
    Event,
    SourcesEvent,
    TokenEvent,
    VerificationEvent,
    sources_only_answer,
)
from torah_study.answer.prompts import ABSTAIN, RABBI
from torah_study.retrieval.retriever import Passage

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

QUESTION = "Where does the Torah say to love your neighbor as yourself?"


class ScriptedModel:
    """An answer model that streams fixed pieces, for forcing outcomes."""

    name = "scripted"

    def __init__(self, pieces: Sequence[str], fail_after: int | None = None) -> None:
        self.pieces = list(pieces)
        self.fail_after = fail_after
        self.messages: list[ChatMessage] = []

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        self.messages = list(messages)
        for index, piece in enumerate(self.pieces):
            if self.fail_after is not None and index == self.fail_after:
                raise ProviderError("connection reset")
            yield piece


def _run(services, model, question: str = QUESTION) -> list[Event]:  # type: ignore[no-untyped-def]
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    return list(pipeline.run(question))


def _text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


def _report(events: list[Event]) -> dict:  # type: ignore[type-arg]
    (event,) = [e for e in events if isinstance(e, VerificationEvent)]
    return event.report


def _lev_number(events: list[Event]) -> int:
    (sources,) = [e for e in events if isinstance(e, SourcesEvent)]
    return next(s["n"] for s in sources.sources if s["ref"] == "Leviticus 19:18")


def test_events_in_order(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, None)
    kinds = [e.kind for e in events]
    assert kinds[0] == "sources"
    assert kinds[-2:] == ["verification", "done"]
    assert set(kinds[1:-2]) == {"token"}
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.answer == _text(events)


def test_sound_answer_passes(services) -> None:  # type: ignore[no-untyped-def]
    probe = _run(services, None)
    n = _lev_number(probe)
    model = ScriptedModel(
        [f"The Torah commands it in Leviticus 19:18 [{n}]. ",
         f'It says "thou shalt love thy neighbour as thyself" [{n}].']
    )  # fmt: skip
    events = _run(services, model)
    report = _report(events)
    assert report["passed"], report
    assert "Leviticus 19:18" in _text(events)
    assert report["quotes_checked"] == 1
    assert report["quotes_found"] == {str(n): 1}
    assert "Sources:" in model.messages[1].content


def test_verification_failures_never_reach_output(services) -> None:  # type: ignore[no-untyped-def]
    n = _lev_number(_run(services, None))
    bad_citation = "Rabbi Akiva called it the great principle [9]. "
    invented_ref = f"It is repeated in Genesis 49:33 [{n}]. "
    false_quote = f'The verse says "love the stranger in your gates always" [{n}]. '
    good = f"Leviticus 19:18 commands love of one's neighbor [{n}]."
    model = ScriptedModel([bad_citation, invented_ref, false_quote, good])
    events = _run(services, model)
    text = _text(events)
    # The removed sentence's quotation is checked but not counted as found.
    assert _report(events)["quotes_found"] == {}
    done = events[-1]
    assert isinstance(done, DoneEvent)
    for sentence in (bad_citation, invented_ref, false_quote):
        assert sentence.strip() not in text
        assert sentence.strip() not in done.answer
    assert good in text
    report = _report(events)
    assert not report["passed"]
    reasons = " ".join(r["reason"] for r in report["removed"])
    assert "cites [9]" in reasons
    assert "Genesis 49:33" in reasons
    assert "not in the cited text" in reasons


def test_invalid_ref_in_answer_removed(services) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(["See Genesis 51:2 [1]. ", "Nothing else."])
    events = _run(services, model)
    assert "Genesis 51:2" not in _text(events)
    assert "invalid ref" in _report(events)["removed"][0]["reason"]


def test_uncited_claim_removed(services) -> None:  # type: ignore[no-untyped-def]
    n = _lev_number(_run(services, None))
    claim = "The Torah teaches this in the name of Rabbi Eliezer and Rabbi Menachem. "
    cited = f"Leviticus 19:18 commands love of one's neighbor [{n}]. "
    events = _run(
        services, ScriptedModel([claim, cited, "Ask a rabbi about practice."])
    )
    text = _text(events)
    assert claim.strip() not in text
    assert cited.strip() in text
    assert "Ask a rabbi about practice." in text
    reasons = [r["reason"] for r in _report(events)["removed"]]
    assert reasons == ["makes a claim without citing a source"]


def test_uncited_answer_falls_back_to_sources(services) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(["I think it is somewhere in the Torah."])
    events = _run(services, model)
    report = _report(events)
    assert report["fallback"]
    assert "Leviticus 19:18" in _text(events)


def test_provider_error_before_text_ends_with_error(services) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(["Partial answer", " that never ends"], fail_after=1)
    events = _run(services, model)
    kinds = [e.kind for e in events]
    assert kinds == ["sources", "error"]
    assert events[-1].code == "answer_failed"  # type: ignore[union-attr]
    assert "connection reset" in events[-1].message  # type: ignore[union-attr]


def test_practical_question_points_to_rabbi(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, None, "Can I carry on Shabbat?")
    done = events[-1]
    assert isinstance(done, DoneEvent)
    if done.mode == "abstain":
        pytest.fail("a practical question about Shabbat should find Mishnah Shabbat")
    assert RABBI["en"] in done.answer


def test_hebrew_abstention_in_hebrew(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, None, "מי ניצח במונדיאל 2018 בכדורגל?")
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.mode == "abstain"
    assert done.refs == []
    assert ABSTAIN["he"] in done.answer


def test_out_of_library_abstains_with_no_refs(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, ScriptedModel(["Should never be called [1]."]))
    events = _run(
        services,
        ScriptedModel(["Never shown [1]."]),
        "Who won the 2018 football World Cup?",
    )
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.mode == "abstain"
    assert done.refs == []
    assert "Never shown" not in done.answer


def test_claim_hidden_behind_rabbi_phrase_removed(services) -> None:  # type: ignore[no-untyped-def]
    claim = (
        "Eating meat right after dairy is fully permitted according to all "
        "authorities, no need to ask a rabbi."
    )
    events = _run(services, ScriptedModel([claim]))
    assert claim not in _text(events)


def test_sources_only_keeps_every_source(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, None, "What do the sages teach about loving peace?")
    done = events[-1]
    assert isinstance(done, DoneEvent)
    for ref in done.refs:
        assert ref in done.answer


def test_provider_error_after_shown_text_ends_with_an_error(services) -> None:  # type: ignore[no-untyped-def]
    events = _run(services, ScriptedModel(["x"]))
    number = _lev_number(events)
    cited = f"Leviticus 19:18 says to love your neighbor as yourself [{number}]. "
    model = ScriptedModel([cited, "And then", " more"], fail_after=2)
    events = _run(services, model)
    assert _text(events) == cited
    assert events[-1].kind == "error"
    assert events[-1].code == "answer_interrupted"  # type: ignore[union-attr]
    assert not any(e.kind == "done" for e in events)


def test_token_counts_reach_the_done_event(services) -> None:  # type: ignore[no-untyped-def]
    number = _lev_number(_run(services, ScriptedModel(["x"])))
    cited = f"Leviticus 19:18 says to love your neighbor as yourself [{number}]."
    model = ScriptedModel([cited, Usage(prompt_tokens=812, completion_tokens=17)])  # type: ignore[list-item]
    events = _run(services, model)
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.usage == {"prompt_tokens": 812, "completion_tokens": 17}
    assert _text(events) == cited


class StoppingModel:
    """Streams words that never end a sentence and sets ``cancel`` on the way.

    Setting the event from inside the model plays the consumer that leaves
    while the answer is still one unfinished sentence.
    """

    name = "stopping"

    def __init__(self, cancel: threading.Event, stop_at: int, words: int) -> None:
        self.cancel = cancel
        self.stop_at = stop_at
        self.words = words
        self.requested = 0
        self.closed = False

    def stream(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> Iterator[str]:
        try:
            for _ in range(self.words):
                self.requested += 1
                if self.requested == self.stop_at:
                    self.cancel.set()
                yield "word "
            yield "about Leviticus 19:18 [1]."
        finally:
            self.closed = True


def test_cancel_stops_the_model_at_its_next_piece(services) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    model = StoppingModel(cancel, stop_at=5, words=200)
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    events: list[Event] = []
    with pytest.raises(AnswerCancelled):
        for event in pipeline.run(QUESTION, cancel=cancel):
            events.append(event)
    assert model.requested == 5
    assert model.closed
    # No fallback answer, no verification report and no done event.
    assert [e.kind for e in events] == ["sources"]


def test_cancel_before_generation_skips_the_model(services) -> None:  # type: ignore[no-untyped-def]
    cancel = threading.Event()
    cancel.set()
    model = StoppingModel(cancel, stop_at=5, words=200)
    pipeline = AnswerPipeline(services.retriever, services.catalog, model)
    events: list[Event] = []
    with pytest.raises(AnswerCancelled):
        for event in pipeline.run(QUESTION, cancel=cancel):
            events.append(event)
    assert model.requested == 0
    assert [e.kind for e in events] == ["sources"]


def test_answer_cut_inside_a_citation_loses_the_fragment(services) -> None:  # type: ignore[no-untyped-def]
    n = _lev_number(_run(services, None))
    model = ScriptedModel(
        [f"Leviticus 19:18 commands love of one's neighbor [{n}]. ", "And [thi"]
    )
    events = _run(services, model)
    text = _text(events)
    assert "[thi" not in text
    assert f"[{n}]" in text
    reasons = [r["reason"] for r in _report(events)["removed"]]
    assert reasons == ["ends inside a citation marker"]


def test_sources_list_turns_footnote_markers_into_parentheses(services) -> None:  # type: ignore[no-untyped-def]
    daf = services.retriever.lookup(services.catalog.parse("Berakhot 11b"))
    records = [r for r in daf if re.search(r"\w\[\d{1,3}\]", r.en[:200])]
    assert records, "the test library should hold a segment with a footnote marker"
    record = records[0]
    text = sources_only_answer([Passage(record, 1.0)], "en", False, False)
    body = text.split("\n", 2)[2]
    assert re.findall(r"\[\d+\]", body) == ["[1]"]
    assert re.search(r"\w\(\d{1,3}\)", body)


def test_practical_answer_teaches_sources_without_ruling(services) -> None:  # type: ignore[no-untyped-def]
    model = ScriptedModel(
        [
            "The Mishnah lists carrying out among the labors of Shabbat [1]. ",
            "So you may not carry your keys outside [1]. ",
        ]
    )
    events = _run(services, model, "Can I carry my keys on Shabbat?")
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.mode == "search"
    text = _text(events)
    assert "labors of Shabbat [1]" in text
    assert "you may not" not in text
    assert RABBI["en"] in text
    removed = _report(events)["removed"]
    assert [r["reason"] for r in removed] == [
        "tells the learner what to do (\u201cyou may\u201d)"
    ]
    # The prompt instructs the model to teach the sources and give no ruling.
    assert "Do not tell the learner what to do" in model.messages[0].content


def test_quoted_source_keeps_abbreviations_and_nests_its_quotes() -> None:
    from torah_study.answer.pipeline import quote_text

    text = 'Rem"a: "I have set the Lord before me" \u201cso\u201d, as רמב"ם wrote.'
    assert quote_text(text) == (
        "Rem\"a: 'I have set the Lord before me' \u2018so\u2019, as רמב\"ם wrote."
    )


def test_practical_abstention_points_to_a_rabbi_without_sources(services) -> None:  # type: ignore[no-untyped-def]
    from torah_study.answer.prompts import RABBI_NO_SOURCES

    events = _run(services, None, "Can I use my phone to pay for the bus?")
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.mode == "abstain"
    assert RABBI_NO_SOURCES["en"] in done.answer
    assert "sources above" not in done.answer
