"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

MAX_QUESTION_CHARS = 2000


class ChatRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    books: list[str] = Field(default_factory=list, max_length=50)
    categories: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("question")
    @classmethod
    def reject_blank(cls, value: str) -> str:
        value = check_text(value, "question").strip()
        if not value:
            raise ValueError("question must not be blank")
        return value


class ChatResponse(BaseModel):
    answer: str
    mode: str
    provider: str
    sources: list[dict[str, Any]]
    verification: dict[str, Any]
    refs: list[str]
    timings: dict[str, float]
    usage: dict[str, int] = Field(default_factory=dict)


class SegmentOut(BaseModel):
    ref: str
    he_ref: str
    he: str
    en: str
    versions: dict[str, str]
    licenses: dict[str, str]


class RelatedOut(BaseModel):
    ref: str
    he_ref: str
    # "commentary" for a comment on the passage, "base" for the text a
    # comment explains, else the link's type ("quotation", "reference", or
    # "link" when the link file gives none).
    kind: str


class TextResponse(BaseModel):
    ref: str
    he_ref: str
    book: str
    categories: list[str]
    segments: list[SegmentOut]
    before: list[SegmentOut]
    after: list[SegmentOut]
    # Set only for a request with section=true. They are the section in
    # ``segments`` (normal form), the refs of its segments that the requested
    # ref covers, and whether the section was cut at the cap.
    section_ref: str | None = None
    highlight: list[str] = Field(default_factory=list)
    truncated: bool = False
    # Commentaries on the ref and passages linked to it (not for sections).
    related: list[RelatedOut] = Field(default_factory=list)


class SearchResponse(BaseModel):
    query: str
    mode: str
    message: str
    results: list[dict[str, Any]]
    timings: dict[str, float]


MAX_TITLE_CHARS = 200


def check_text(value: str, what: str) -> str:
    """Return ``value``, or raise ValueError naming ``what`` when it is not text.

    Lone surrogates (from a JSON escape such as "\\ud800") and control
    characters other than tab and line breaks are rejected.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what} contains invalid Unicode") from error
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in value) or "\x7f" in value:
        raise ValueError(f"{what} contains control characters")
    return value


# Bidirectional overrides and invisible characters: a title holding them can
# reorder or hide the text around it in a sidebar.
_HIDDEN = dict.fromkeys(
    [
        0x200B,
        0x2060,
        0xFEFF,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        *range(0x80, 0xA0),
    ]
)


def _title(value: str) -> str:
    return " ".join(check_text(value, "title").translate(_HIDDEN).split())


# Accounts.


class Credentials(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)

    @field_validator("email", "password")
    @classmethod
    def clean(cls, value: str) -> str:
        return check_text(value, "the field")


class CodeRequest(BaseModel):
    challenge_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32)


class ResetRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)


class ResetConfirm(BaseModel):
    challenge_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32)
    new_password: str = Field(min_length=1, max_length=1024)

    @field_validator("new_password")
    @classmethod
    def clean(cls, value: str) -> str:
        return check_text(value, "the password")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)

    @field_validator("current_password", "new_password")
    @classmethod
    def clean(cls, value: str) -> str:
        return check_text(value, "the password")


class UserOut(BaseModel):
    id: str
    email: str
    verified: bool
    created_at: datetime


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


class ChallengeResponse(BaseModel):
    status: str = "code_sent"
    challenge_id: str
    expires_in: int
    detail: str


# Conversations.


class ConversationCreate(BaseModel):
    title: str | None = Field(default=None, max_length=MAX_TITLE_CHARS)

    @field_validator("title")
    @classmethod
    def clean(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _title(value) or None


class ConversationRename(BaseModel):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)

    @field_validator("title")
    @classmethod
    def clean(cls, value: str) -> str:
        value = _title(value)
        if not value:
            raise ValueError("title must not be blank")
        return value


class ConversationOut(BaseModel):
    id: str
    title: str | None
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class SourceOut(BaseModel):
    rank: int
    ref: str
    he_ref: str | None
    language: str
    score: float
    verified: bool
    book: str | None
    category: str | None
    url: str


class MessageOut(BaseModel):
    id: str
    position: int
    role: str
    content: str
    status: str
    query: str | None
    mode: str | None
    provider: str | None
    latency_ms: float | None
    first_token_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    verification: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    sources: list[SourceOut]
    # The signed-in user's rating of this answer; None when unrated and for
    # the user's own messages.
    feedback: Literal["up", "down"] | None = None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class MessageCreate(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    books: list[str] = Field(default_factory=list, max_length=50)
    categories: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("content")
    @classmethod
    def reject_blank(cls, value: str) -> str:
        value = check_text(value, "content").strip()
        if not value:
            raise ValueError("content must not be blank")
        return value


class TurnResponse(BaseModel):
    conversation: ConversationOut
    query: str
    user_message: MessageOut
    assistant_message: MessageOut


class FeedbackCreate(BaseModel):
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=2000)

    @field_validator("comment")
    @classmethod
    def clean(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_text(value, "comment").strip() or None


class FeedbackOut(BaseModel):
    message_id: str
    rating: Literal["up", "down"]
    comment: str | None
    updated_at: datetime
