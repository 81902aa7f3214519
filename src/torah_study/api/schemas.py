"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

MAX_QUESTION_CHARS = 2000


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    books: list[str] = Field(default_factory=list, max_length=50)
    categories: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("question")
    @classmethod
    def reject_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            # A lone surrogate from a JSON "\ud800" escape is not text.
            raise ValueError("question contains invalid Unicode") from error
        return value.strip()


class ChatResponse(BaseModel):
    answer: str
    mode: str
    provider: str
    sources: list[dict[str, Any]]
    verification: dict[str, Any]
    refs: list[str]
    timings: dict[str, float]


class SegmentOut(BaseModel):
    ref: str
    he_ref: str
    he: str
    en: str
    versions: dict[str, str]
    licenses: dict[str, str]


class TextResponse(BaseModel):
    ref: str
    he_ref: str
    book: str
    categories: list[str]
    segments: list[SegmentOut]
    before: list[SegmentOut]
    after: list[SegmentOut]


class SearchResponse(BaseModel):
    query: str
    mode: str
    message: str
    results: list[dict[str, Any]]
    timings: dict[str, float]
