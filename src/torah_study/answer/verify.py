"""Verification of an answer before the learner sees it.

The policy fails closed: a sentence is shown only when every citation marker
in it points to a given source, every ref it names resolves and was retrieved,
and every quoted span occurs in the cited text after normalisation. A sentence
saying the library lacks something must not name a work the library holds.
Sentences that fail are removed and listed in the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torah_study.library.catalog import Catalog
from torah_study.library.hebrew import normalize
from torah_study.library.refs import Ref, RefError
from torah_study.retrieval.retriever import Passage

_CITATION = re.compile(r"\[(\d+(?:\s*[,;\u2013-]\s*\d+)*)\]")
_QUOTE = re.compile(
    r"\"([^\"]{3,}?)\"|\u201c([^\u201d]{3,}?)\u201d|\u05f4([^\u05f4]{3,}?)\u05f4|\u00ab([^\u00bb]{3,}?)\u00bb"
    r"|\u2018([^\u2019]{3,}?)\u2019|\u201e([^\u201c\u201d]{3,}?)[\u201c\u201d]"
)
# Colons do not end a sentence: splitting at them would let a long uncited
# claim through as several short pieces.
_SENTENCE_END = re.compile(r"(?<=[.!?\u05c3])\s+|\n+")
# A quotation mark between two Hebrew letters is gershayim in an abbreviation
# (רש"י, חז"ל), not the start of a quotation.
_ABBREVIATION_QUOTE = re.compile('(?<=[\u05d0-\u05ea])["\u05f4](?=[\u05d0-\u05ea])')
# Citation ranges wider than this are not expanded: no answer has that many
# sources, and "[1-2000000000]" must not build a list of two billion numbers.
MAX_CITATION_RANGE = 50
# A quote of one or two words is a phrase, not a claim about the source text.
MIN_QUOTE_WORDS = 3
# A model's sentence this long without a citation is treated as an unsupported
# claim; shorter ones are headings and transitions ("Sources:", "In short,").
MAX_UNCITED_WORDS = 4
# An exempt sentence (a pointer to a rabbi, "the sources do not answer") may be
# at most this long, so that a claim cannot hide behind the phrase.
MAX_EXEMPT_WORDS = 14
# Sentences that send the learner to a rabbi or say the sources are silent
# make no claim about the texts, so they need no citation.
_NO_CLAIM_MARKERS = (
    "ask a rabbi", "consult a rabbi", "do not answer", "don't answer",
    "לשאול רב", "אינם עונים",
)  # fmt: skip


# A sentence saying the library lacks something ("the library has no…",
# "… is not in the library", "אין בספרייה"). Such a claim is checked against
# the library's titles instead of against the sources.
_ABSENCE = re.compile(
    r"\blibrary (?:does ?n[o']t|doesn't|did ?n[o']t) (?:contain|have|include|hold)"
    r"|\bnot (?:in|part of|found in|included in|available in) the library"
    r"|\b(?:no|none of the) (?:book|text|work|tractate|source)s? (?:in|of) the library"
    r"|\blibrary (?:has|holds|contains|includes) no\b"
    "|\u05d0\u05d9\u05df \u05d1\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4"
    "|\u05d0\u05d9\u05e0\u05d5 \u05d1\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4"
    "|\u05d0\u05d9\u05e0\u05d4 \u05d1\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4"
    "|\u05d4\u05e1\u05e4\u05e8\u05d9\u05d9\u05d4 \u05d0\u05d9\u05e0\u05d4 "
    "\u05db\u05d5\u05dc\u05dc\u05ea",
    re.IGNORECASE,
)
# Second-person rulings ("you may", "מותר לך"): an answer to a practical
# question teaches what the sources rule, not what the learner must do.
RULING = re.compile(
    r"\byou (?:may|can|must|should|need to|have to|are (?:allowed|permitted|"
    r"forbidden|required|obligated|not allowed))\b|\bit is (?:fine|okay|ok) "
    r"(?:for you|to)\b|"
    "(?:\u05de\u05d5\u05ea\u05e8 \u05dc\u05da|\u05d0\u05e1\u05d5\u05e8 "
    "\u05dc\u05da|\u05e2\u05dc\u05d9\u05da \u05dc|\u05d0\u05ea\u05d4 "
    "\u05d9\u05db\u05d5\u05dc|\u05d0\u05ea\u05d4 \u05e6\u05e8\u05d9\u05da)",
    re.IGNORECASE,
)
# An absence claim may be this long and still need no citation, when it names
# no work that the library holds.
MAX_ABSENCE_WORDS = 30


@dataclass
class Removed:
    text: str
    reason: str


@dataclass
class VerificationReport:
    """Outcome of verification: the checks made and the sentences removed."""

    sentences: int = 0
    citations: list[int] = field(default_factory=list)
    refs_checked: list[str] = field(default_factory=list)
    quotes_checked: int = 0
    # Source number -> quotations of shown sentences found in that source.
    quotes_found: dict[int, int] = field(default_factory=dict)
    removed: list[Removed] = field(default_factory=list)
    fallback: bool = False

    @property
    def passed(self) -> bool:
        return not self.removed and not self.fallback

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "sentences": self.sentences,
            "citations": sorted(set(self.citations)),
            "refs_checked": self.refs_checked,
            "quotes_checked": self.quotes_checked,
            "quotes_found": {str(n): count for n, count in self.quotes_found.items()},
            "removed": [{"text": r.text, "reason": r.reason} for r in self.removed],
            "fallback": self.fallback,
        }


def _inside_quote(text: str) -> bool:
    text = _ABBREVIATION_QUOTE.sub("", text)
    curly = text.count("\u201c") - text.count("\u201d")
    return curly > 0 or text.count('"') % 2 == 1 or text.count("\u05f4") % 2 == 1


def split_sentences(text: str) -> list[str]:
    """Split text after sentence punctuation or newlines, keeping the separators.

    A break inside an open quotation is skipped unless it is a newline, so a
    quote is checked as a whole.
    """
    pieces: list[str] = []
    last = 0
    for match in _SENTENCE_END.finditer(text):
        if "\n" not in match.group() and _inside_quote(text[last : match.start()]):
            continue
        pieces.append(text[last : match.end()])
        last = match.end()
    if last < len(text):
        pieces.append(text[last:])
    return pieces


def cited_numbers(text: str) -> list[int]:
    numbers: list[int] = []
    for match in _CITATION.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1)):
            bounds = re.split(r"\s*[\u2013-]\s*", part)
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
                low, high = int(bounds[0]), int(bounds[1])
                if high - low > MAX_CITATION_RANGE:
                    numbers.extend((low, high))
                else:
                    numbers.extend(range(low, high + 1))
            elif part.strip().isdigit():
                numbers.append(int(part))
    return numbers


def quoted_spans(text: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _QUOTE.finditer(text)]


class Verifier:
    """Checks sentences of an answer against the passages it was given.

    With ``require_citations`` (used for model output) a sentence that makes a
    claim must cite a source; ``exempt`` lists texts that need no citation,
    such as the advice to ask a rabbi.
    """

    def __init__(
        self,
        catalog: Catalog,
        passages: Sequence[Passage],
        *,
        require_citations: bool = False,
        exempt: Sequence[str] = (),
        practical: bool = False,
    ) -> None:
        self.catalog = catalog
        self.require_citations = require_citations
        # For a practical question, a sentence giving a ruling is removed.
        self.practical = practical
        self.exempt = [normalize(text) for text in exempt]
        self.passages = list(passages)
        self.report = VerificationReport()
        # Source numbers whose text held the quotations of the last sentence.
        self._quoted: list[int] = []
        self._given: list[Ref] = []
        for passage in self.passages:
            try:
                self._given.append(catalog.parse(passage.record.ref, validate=False))
            except RefError:
                continue
        self._texts = [normalize(f"{p.record.he} {p.record.en}") for p in self.passages]

    def check(self, sentence: str) -> str | None:
        """Return why ``sentence`` must be removed, or None when it is sound."""
        # Brackets and refs inside a quotation belong to the source (footnote
        # marks, its own citations), not to the answer.
        sentence = _ABBREVIATION_QUOTE.sub("", sentence)
        unquoted = _QUOTE.sub(" ", sentence)
        if unquoted.count("[") > unquoted.count("]"):
            # An answer cut off by its token limit can end inside a marker.
            return "ends inside a citation marker"
        numbers = cited_numbers(unquoted)
        for number in numbers:
            if not 1 <= number <= len(self.passages):
                given = len(self.passages)
                return f"cites [{number}], but only {given} sources were given"
        for found in self.catalog.find_refs(unquoted):
            if isinstance(found, RefError):
                return f"names an invalid ref: {found}"
            self.report.refs_checked.append(found.normal())
            if not self._was_retrieved(found):
                return f"names {found.normal()}, which was not among the sources"
        if self.practical:
            ruling = RULING.search(unquoted)
            if ruling:
                return f"tells the learner what to do (\u201c{ruling.group(0)}\u201d)"
        absence = _ABSENCE.search(unquoted) is not None
        if absence:
            books, _ = self.catalog.mentioned(unquoted)
            if books:
                return f"says the library lacks {books[0]}, but the library holds it"
        # A short claim of absence naming no held work needs no citation.
        exempt_absence = absence and len(unquoted.split()) <= MAX_ABSENCE_WORDS
        uncited = not numbers and not exempt_absence
        if self.require_citations and uncited and self._is_claim(unquoted):
            return "makes a claim without citing a source"
        pool = numbers or list(range(1, len(self._texts) + 1))
        self._quoted = []
        for quote in quoted_spans(sentence):
            # An ellipsis marks omitted words, so each part is matched alone.
            for part in re.split(r"\u2026|\.\.\.", quote):
                words = normalize(part).split()
                if len(words) < MIN_QUOTE_WORDS:
                    continue
                self.report.quotes_checked += 1
                phrase = " ".join(words)
                holders = [n for n in pool if phrase in self._texts[n - 1]]
                if not holders:
                    return (
                        f"quotes \u201c{quote.strip()}\u201d, which is not in the "
                        "cited text"
                    )
                self._quoted.append(holders[0])
        return None

    def accept(self, sentence: str) -> bool:
        """Check ``sentence``, record the outcome, and tell whether to show it."""
        if not sentence.strip():
            return True
        self.report.sentences += 1
        reason = self.check(sentence)
        if reason is not None:
            self.report.removed.append(Removed(sentence.strip(), reason))
            return False
        plain = _ABBREVIATION_QUOTE.sub("", sentence)
        self.report.citations.extend(cited_numbers(_QUOTE.sub(" ", plain)))
        for number in self._quoted:
            found = self.report.quotes_found
            found[number] = found.get(number, 0) + 1
        return True

    def _is_claim(self, text: str) -> bool:
        plain = normalize(text)
        if any(plain and plain in exempt for exempt in self.exempt):
            return False
        short = len(plain.split()) <= MAX_EXEMPT_WORDS
        if short and any(marker in plain for marker in _NO_CLAIM_MARKERS):
            return False
        return len(plain.split()) > MAX_UNCITED_WORDS

    def _was_retrieved(self, ref: Ref) -> bool:
        return any(given.contains(ref) or ref.contains(given) for given in self._given)


def verify_text(
    catalog: Catalog, passages: Sequence[Passage], text: str
) -> tuple[str, VerificationReport]:
    """Verify a whole answer at once; return the kept text and the report."""
    verifier = Verifier(catalog, passages)
    kept = [s for s in split_sentences(text) if verifier.accept(s)]
    return "".join(kept), verifier.report
