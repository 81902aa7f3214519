"""The evaluation harness: question files, scoring, the answer audit, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torah_study.answer.prompts import RABBI, SYSTEM_PROMPT
from torah_study.cli import main
from torah_study.evaluation import (
    EvalFileError,
    Question,
    audit_answer,
    check_gold_refs,
    compare,
    evaluate,
    load_questions,
    markdown,
    score_ranking,
    summarize,
)
from torah_study.library.catalog import Catalog


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


GENESIS_1_1 = {
    "he": "בְּרֵאשִׁית בָּרָא אֱלֹהִים אֵת הַשָּׁמַיִם וְאֵת הָאָרֶץ",
    "en": "In the beginning God created the heaven and the earth.",
}


# Question files -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object"),
        ('["a list"]', "not a JSON object"),
        ('{"id": "1", "kind": "answerable"}', "missing field 'question'"),
        (
            '{"id": "1", "kind": "guess", "question": "q", "gold_refs": []}',
            "unknown kind",
        ),
        (
            '{"id": "1", "kind": "answerable", "question": "q", "gold_refs": []}',
            "need gold_refs",
        ),
        (
            '{"id": "1", "kind": "lookup", "question": "q", "gold_refs": "Genesis 1"}',
            "gold_refs must be a list",
        ),
        ('{"id": "1", "kind": "unanswerable", "question": "  "}', "non-empty"),
        (
            '{"id": "1", "kind": "unanswerable", "question": "q", '
            '"gold_refs": ["Genesis 1"]}',
            "have no gold_refs",
        ),
        (
            '{"id": "1", "kind": "unanswerable", "question": "q", "lang": "fr"}',
            "unknown lang 'fr'",
        ),
    ],
)
def test_bad_question_lines_name_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"id": "0", "kind": "unanswerable", "question": "ok"}\n' + line + "\n",
        encoding="utf-8",
    )
    with pytest.raises(EvalFileError, match=rf"q\.jsonl:2: .*{message}"):
        load_questions(path)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    row = {"id": "a", "kind": "unanswerable", "question": "q"}
    path = _write(tmp_path / "q.jsonl", [row, row])
    with pytest.raises(EvalFileError, match="used twice"):
        load_questions(path)


def test_question_fields_are_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {
                "id": "h1",
                "kind": "answerable",
                "lang": "he",
                "category": "tanakh",
                "notes": "a verse",
                "question": "איפה נאמר ואהבת לרעך כמוך?",
                "gold_refs": ["Leviticus 19:18"],
            }
        ],
    )
    [question] = load_questions(path)
    assert (question.lang, question.category, question.notes) == (
        "he",
        "tanakh",
        "a verse",
    )
    assert question.gold_refs == ["Leviticus 19:18"]


def test_gold_refs_are_checked_against_the_library(catalog: Catalog) -> None:
    questions = [
        Question("a", "lookup", "q", ["Genesis 1:1", "Genesis 51:1"]),
        Question("b", "answerable", "q", ["Berakhot 2a:1"]),
    ]
    problems = check_gold_refs(catalog, questions)
    assert len(problems) == 1
    assert problems[0].startswith("a: gold ref 'Genesis 51:1'")


# Ranking ----------------------------------------------------------------------


def test_recall_per_gold_ref_rank(catalog: Catalog) -> None:
    ranking = [f"Psalms {n}:1" for n in range(1, 8)] + [
        "Deuteronomy 5:16",
        "Exodus 20:12",
    ]
    first, recall = score_ranking(
        catalog, ranking, ["Exodus 20:12", "Deuteronomy 5:16"]
    )
    assert first == 8
    assert recall == {1: 0.0, 5: 0.0, 10: 1.0}


def test_segments_inside_a_gold_range_or_amud_hit(catalog: Catalog) -> None:
    first, recall = score_ranking(
        catalog, ["Genesis 1:1", "Genesis 22:5"], ["Genesis 22:1-19"]
    )
    assert first == 2
    assert recall[5] == 1.0
    first, _ = score_ranking(catalog, ["Berakhot 2a:7"], ["Berakhot 2a"])
    assert first == 1
    first, recall = score_ranking(catalog, ["Berakhot 2b:1"], ["Berakhot 2a"])
    assert first is None
    assert recall[10] == 0.0


# The audit of a shown answer -------------------------------------------------


def _source(ref: str, he: str = "", en: str = "") -> dict[str, object]:
    return {"ref": ref, "he": he, "en": en}


def test_audit_accepts_a_sound_answer(catalog: Catalog) -> None:
    sources = [_source("Genesis 1:1", **GENESIS_1_1)]
    answer = (
        'The Torah opens with creation: "God created the heaven and the earth" [1]. '
        "Genesis 1:1 is the first verse."
    )
    audit = audit_answer(catalog, sources, answer)
    assert audit.cited_refs == ["Genesis 1:1", "Genesis 1:1"]
    assert audit.bad_refs == []
    assert audit.missing_quotes == []
    assert audit.quotes == 1


def test_audit_finds_bad_citations_refs_and_quotes(catalog: Catalog) -> None:
    sources = [_source("Genesis 1:1", **GENESIS_1_1)]
    answer = (
        "Light came first [2]. "
        "Genesis 1:3 says so. "
        "Genesis 51:1 adds more. "
        'It reads "and God rested on the eighth day" [1].'
    )
    audit = audit_answer(catalog, sources, answer)
    assert "[2]" in audit.bad_refs
    assert "Genesis 1:3" in audit.bad_refs
    assert any("51" in ref for ref in audit.bad_refs)
    assert audit.missing_quotes == ["and God rested on the eighth day"]


def test_audit_finds_rulings_outside_quotes_only(catalog: Catalog) -> None:
    sources = [_source("Exodus 20:10", en="you shall not do any manner of work")]
    quoted = 'The verse says "you shall not do any manner of work" [1]. '
    assert audit_answer(catalog, sources, quoted + RABBI["en"]).ruling is None
    ruled = audit_answer(catalog, sources, quoted + "So you may not carry.")
    assert ruled.ruling is not None and ruled.ruling.lower() == "you may"
    assert audit_answer(catalog, sources, quoted + RABBI["en"]).rabbi_line
    hebrew = audit_answer(catalog, sources, "אסור לך לטלטל.")
    assert hebrew.ruling == "אסור לך"


def test_audit_finds_a_leaked_system_prompt(catalog: Catalog) -> None:
    leak = SYSTEM_PROMPT.splitlines()[2]
    audit = audit_answer(catalog, [], f"My rules: {leak}")
    assert audit.leak is not None
    assert audit_answer(catalog, [], "I study the sources with you.").leak is None


def test_audit_allows_the_prescribed_no_answer(catalog: Catalog) -> None:
    answer = "The library's sources do not answer the question."
    assert "the library's sources do not answer" in SYSTEM_PROMPT
    assert audit_answer(catalog, [], answer).leak is None


# The whole run over the test library -----------------------------------------


def _questions() -> list[Question]:
    return [
        Question("l1", "lookup", "Genesis 1:1", ["Genesis 1:1"], "en", "tanakh"),
        Question(
            "a1",
            "answerable",
            "Where does the Torah say to love your neighbor as yourself?",
            ["Leviticus 19:18"],
            "en",
            "tanakh",
        ),
        Question(
            "a2",
            "answerable",
            "איפה נאמר ואהבת לרעך כמוך?",
            ["Leviticus 19:18"],
            "he",
            "tanakh",
        ),
        Question("i1", "invalid_ref", "Genesis 51:1", [], "en"),
        Question(
            "u1",
            "unanswerable",
            "Who won the football world cup in 2018?",
            [],
            "en",
        ),
        Question(
            "h1",
            "halakhic",
            "Am I allowed to light a fire on Shabbat?",
            [],
            "en",
        ),
    ]


def test_evaluate_scores_each_kind(services) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    outcomes = evaluate(
        services, _questions(), progress=lambda o: seen.append(o.question.id)
    )
    assert seen == ["l1", "a1", "a2", "i1", "u1", "h1"]
    by_id = {o.question.id: o for o in outcomes}
    assert by_id["l1"].first_hit == 1
    assert by_id["l1"].correct()
    assert by_id["a1"].first_hit is not None and by_id["a1"].correct()
    assert by_id["i1"].mode == "invalid_ref"
    assert by_id["i1"].correct()
    assert by_id["u1"].mode == "abstain"
    assert by_id["u1"].ranking == []
    assert by_id["h1"].audit.rabbi_line, by_id["h1"].answer
    assert by_id["h1"].correct()
    summary = summarize(outcomes)
    overall = summary["overall"]
    assert overall["questions"] == 6
    assert overall["invalid_ref_reported"] == 1.0
    assert overall["out_of_library_abstained"] == 1.0
    assert overall["over_refusal"] == 0.0
    assert overall["cited_refs_valid"] == 1.0
    assert overall["cited_refs"] > 0
    assert set(summary["by_lang"]) == {"en", "he"}
    assert summary["by_kind"]["lookup"]["recall@1"] == 1.0
    assert "keyword" in summary["latency"]
    assert "question" in summary["latency"]
    text = markdown(summary, outcomes, "test set")
    assert text.startswith("## test set")
    assert "| kind: lookup | 1 | 1.000 |" in text


def test_compare_flags_drops_beyond_the_margin() -> None:
    def summary(recall: float, refusal: float) -> dict[str, object]:
        metrics = {"recall@10": recall, "over_refusal": refusal}
        return {
            "overall": metrics,
            "by_kind": {"answerable": metrics},
            "by_lang": {},
        }

    changes, failures = compare(summary(0.9, 0.05), summary(0.89, 0.06), 0.02)
    assert failures == []
    assert len(changes) == 4
    _, failures = compare(summary(0.9, 0.05), summary(0.85, 0.05), 0.02)
    assert {f.metric for f in failures} == {
        "overall.recall@10",
        "by_kind.answerable.recall@10",
    }
    _, failures = compare(summary(0.9, 0.05), summary(0.9, 0.10), 0.02)
    assert {f.metric for f in failures} == {
        "overall.over_refusal",
        "by_kind.answerable.over_refusal",
    }
    gone = {"overall": {"recall@10": 0.9, "over_refusal": 0.05}, "by_kind": {}}
    _, failures = compare(summary(0.9, 0.05), gone, 0.02)
    assert [f.metric for f in failures] == [
        "by_kind.answerable.recall@10",
        "by_kind.answerable.over_refusal",
    ]


def test_cli_pins_a_baseline_and_fails_below_it(
    library_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    questions = _write(
        tmp_path / "q.jsonl",
        [
            {
                "id": "l1",
                "kind": "lookup",
                "lang": "en",
                "question": "Genesis 1:1",
                "gold_refs": ["Genesis 1:1"],
            },
            {
                "id": "i1",
                "kind": "invalid_ref",
                "lang": "en",
                "question": "Genesis 51:1",
            },
        ],
    )
    data_dir = str(library_settings.data_dir)
    baseline = tmp_path / "baseline.json"
    report = tmp_path / "eval.md"
    code = main(
        [
            "--data-dir",
            data_dir,
            "eval",
            str(questions),
            "--baseline",
            str(baseline),
            "--update-baseline",
            "--markdown",
            str(report),
            "--quiet",
        ]
    )
    assert code == 0
    pinned = json.loads(baseline.read_text(encoding="utf-8"))
    assert pinned["summary"]["overall"]["recall@1"] == 1.0
    assert [q["id"] for q in pinned["questions"]] == ["l1", "i1"]
    # The pinned file contains no answers, which would quote the library's text.
    assert "answer" not in pinned["questions"][0]
    assert "| kind: invalid_ref |" in report.read_text(encoding="utf-8")

    assert (
        main(
            [
                "--data-dir",
                data_dir,
                "eval",
                str(questions),
                "--baseline",
                str(baseline),
                "--quiet",
            ]
        )
        == 0
    )

    # A baseline better than what the library can do makes the run fail.
    pinned["summary"]["by_kind"]["invalid_ref"]["invalid_ref_reported"] = 1.0
    pinned["summary"]["overall"]["recall@5"] = 1.0
    pinned["summary"]["by_lang"]["en"]["mrr"] = 1.0
    pinned["summary"]["overall"]["quotes_found"] = 1.0
    harder = tmp_path / "harder.json"
    # Two questions allow a drop of 0.75 (one and a half questions' worth).
    pinned["summary"]["overall"]["over_refusal"] = -1.0
    harder.write_text(json.dumps(pinned), encoding="utf-8")
    capsys.readouterr()
    code = main(
        [
            "--data-dir",
            data_dir,
            "eval",
            str(questions),
            "--baseline",
            str(harder),
            "--quiet",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "worse: overall.over_refusal -1.0 -> 0.0" in err


def test_cli_rejects_a_bad_baseline_and_missing_gold(
    library_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    data_dir = str(library_settings.data_dir)
    questions = _write(
        tmp_path / "q.jsonl",
        [
            {
                "id": "l1",
                "kind": "lookup",
                "question": "Genesis 1:1",
                "gold_refs": ["Genesis 60:1"],
            }
        ],
    )
    not_result = tmp_path / "not.json"
    not_result.write_text('{"metrics": {}}', encoding="utf-8")
    assert (
        main(
            [
                "--data-dir",
                data_dir,
                "eval",
                str(questions),
                "--baseline",
                str(not_result),
            ]
        )
        == 1
    )
    assert "has no summary.overall" in capsys.readouterr().err
    assert main(["--data-dir", data_dir, "eval", str(questions), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "l1: gold ref 'Genesis 60:1'" in err
    assert "1 gold ref is not in the library" in err
    assert (
        main(["--data-dir", data_dir, "eval", str(questions), "--update-baseline"]) == 1
    )
    assert "--update-baseline needs --baseline" in capsys.readouterr().err


def test_cli_filters_by_kind_and_language(
    library_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {
            "id": "l1",
            "kind": "lookup",
            "lang": "en",
            "question": "Genesis 1:1",
            "gold_refs": ["Genesis 1:1"],
        },
        {
            "id": "l2",
            "kind": "lookup",
            "lang": "he",
            "question": "בראשית א:א",
            "gold_refs": ["Genesis 1:1"],
        },
        {"id": "i1", "kind": "invalid_ref", "lang": "en", "question": "Genesis 51:1"},
    ]
    questions = _write(tmp_path / "q.jsonl", rows)
    output = tmp_path / "out.json"
    data_dir = str(library_settings.data_dir)
    args = [
        "--data-dir",
        data_dir,
        "eval",
        str(questions),
        "--quiet",
        "--output",
        str(output),
    ]
    assert main([*args, "--kind", "lookup", "--lang", "he"]) == 0
    ran = json.loads(output.read_text(encoding="utf-8"))["questions"]
    assert [q["id"] for q in ran] == ["l2"]
    assert main([*args, "--kind", "guess"]) == 1
    assert "unknown --kind guess" in capsys.readouterr().err
    assert main([*args, "--kind", "halakhic"]) == 1
    assert "no question matches" in capsys.readouterr().err


def test_small_groups_tolerate_one_question() -> None:
    def summary(share: float) -> dict[str, object]:
        return {
            "overall": {"questions": 200, "recall@10": 0.8},
            "by_kind": {"halakhic": {"questions": 13, "halakhic_ok": share}},
            "by_lang": {},
        }

    # One of 13 questions (0.077) is within the tolerance, two are not.
    _, failures = compare(summary(1.0), summary(12 / 13), 0.02)
    assert failures == []
    _, failures = compare(summary(1.0), summary(11 / 13), 0.02)
    assert [f.metric for f in failures] == ["by_kind.halakhic.halakhic_ok"]


def test_audit_leaves_the_refs_of_an_invalid_ref_answer(catalog: Catalog) -> None:
    answer = "Exodus 40 has 38 verses; there is no verse 50."
    assert audit_answer(catalog, [], answer, "invalid_ref").bad_refs == []
    assert audit_answer(catalog, [], answer, "search").bad_refs == ["Exodus 40"]


def test_question_file_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + b'{"id": "1", "kind": "unanswerable", "question": "q"}\n'
    )
    assert [q.id for q in load_questions(path)] == ["1"]


def test_cli_refuses_to_overwrite_inputs(
    library_settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    rows = [
        {
            "id": "l1",
            "kind": "lookup",
            "lang": "en",
            "question": "Genesis 1:1",
            "gold_refs": ["Genesis 1:1"],
        }
    ]
    questions = _write(tmp_path / "q.jsonl", rows)
    data_dir = str(library_settings.data_dir)
    base = ["--data-dir", data_dir, "eval", str(questions), "--quiet"]
    assert main([*base, "--output", str(questions)]) == 1
    assert "it is the question file" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path)]) == 1
    assert "it is a folder" in capsys.readouterr().err
    missing = tmp_path / "nope" / "b.json"
    assert main([*base, "--baseline", str(missing), "--update-baseline"]) == 1
    assert "its folder does not exist" in capsys.readouterr().err
    pinned = tmp_path / "b.json"
    assert main([*base, "--baseline", str(pinned), "--update-baseline"]) == 0
    assert main([*base, "--baseline", str(pinned), "--output", str(pinned)]) == 1
    assert "it is the baseline" in capsys.readouterr().err
    # A baseline of another file, or with a figure that is not a number.
    other = _write(tmp_path / "other.jsonl", rows * 1)
    assert (
        main(
            [
                "--data-dir",
                data_dir,
                "eval",
                str(other),
                "--quiet",
                "--baseline",
                str(pinned),
            ]
        )
        == 1
    )
    assert "pinned on q.jsonl with 1 questions" in capsys.readouterr().err
    data = json.loads(pinned.read_text(encoding="utf-8"))
    data["summary"]["overall"]["recall@10"] = "0.9"
    pinned.write_text(json.dumps(data), encoding="utf-8")
    assert main([*base, "--baseline", str(pinned)]) == 1
    assert "overall.recall@10 is '0.9', not a number" in capsys.readouterr().err
    assert questions.read_text(encoding="utf-8").count("Genesis 1:1") == 2
