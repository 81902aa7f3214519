"""Saving and reading conversations, messages, sources and feedback.

Every read and write names the owner, so one user's rows are invisible to
another: a conversation of someone else is reported as not found.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session, selectinload, sessionmaker

from torah_study.conversations.followup import Turn
from torah_study.db.models import (
    Conversation,
    Feedback,
    Message,
    MessageSource,
    User,
)

DEFAULT_TITLE = "New conversation"
_ID = re.compile(r"[0-9a-f]{32}")
SEFARIA = "https://www.sefaria.org/"
SERVICE_STOPPED = "The service stopped while this answer was written."


class NotFound(LookupError):
    """The row does not exist or belongs to someone else."""


class BadCursor(ValueError):
    """A pagination cursor that this service did not write."""


@dataclass(frozen=True)
class Page:
    items: list[Conversation]
    next_cursor: str | None


@dataclass(frozen=True)
class StartedTurn:
    conversation: Conversation
    user_message: Message
    assistant_message: Message


def _now() -> datetime:
    return datetime.now(UTC)


def _encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.updated_at.isoformat()}|{conversation.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        stamp, identifier = text.split("|", 1)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("cursor time without a zone")
        # Normalising the zone fails for dates at the ends of the range.
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as error:
        raise BadCursor("The cursor is not valid.") from error
    if not _ID.fullmatch(identifier):
        raise BadCursor("The cursor is not valid.")
    return moment, identifier


def source_language(source: dict[str, Any]) -> str:
    he, en = bool(source.get("he")), bool(source.get("en"))
    if he and en:
        return "he+en"
    return "he" if he else "en"


class ConversationStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        titler: Callable[[str], str | None],
        read_sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.titler = titler
        # Ids of the answers this store started and has not finished.
        self._open: set[str] = set()
        self._open_lock = threading.Lock()

    # Conversations.

    def create(self, user_id: str, title: str | None = None) -> Conversation:
        now = _now()
        conversation = Conversation(
            user_id=user_id, title=title, created_at=now, updated_at=now
        )
        with self.sessions.begin() as db:
            db.add(conversation)
        return conversation

    def page(self, user_id: str, limit: int, cursor: str | None = None) -> Page:
        """Conversations by newest activity first, ``limit`` at a time."""
        query = select(Conversation).where(Conversation.user_id == user_id)
        if cursor:
            moment, identifier = _decode_cursor(cursor)
            query = query.where(
                or_(
                    Conversation.updated_at < moment,
                    and_(
                        Conversation.updated_at == moment,
                        Conversation.id < identifier,
                    ),
                )
            )
        query = query.order_by(
            Conversation.updated_at.desc(), Conversation.id.desc()
        ).limit(limit + 1)
        with self.read_sessions() as db:
            rows = list(db.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, _encode_cursor(rows[-1]) if more and rows else None)

    def get(self, user_id: str, conversation_id: str) -> Conversation:
        """Return the conversation with its messages, sources and feedback.

        ``Message.feedback`` contains only the user's own rating, so it has
        at most one row. Sources and feedback are read with one query each for
        all messages.
        """
        _check_id(conversation_id)
        messages = selectinload(Conversation.messages)
        with self.read_sessions() as db:
            conversation = db.scalar(
                select(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.user_id == user_id,
                )
                .options(
                    messages.selectinload(Message.sources),
                    messages.selectinload(_own_feedback(user_id)),
                )
            )
        if conversation is None:
            raise NotFound(conversation_id)
        return conversation

    def rename(self, user_id: str, conversation_id: str, title: str) -> Conversation:
        with self.sessions.begin() as db:
            conversation = self._owned(db, user_id, conversation_id)
            conversation.title = title
        return conversation

    def delete(self, user_id: str, conversation_id: str) -> None:
        with self.sessions.begin() as db:
            db.delete(self._owned(db, user_id, conversation_id))

    def _owned(self, db: Session, user_id: str, conversation_id: str) -> Conversation:
        _check_id(conversation_id)
        conversation = db.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
            .with_for_update()
        )
        if conversation is None:
            raise NotFound(conversation_id)
        return conversation

    # Turns.

    def history(self, user_id: str, conversation_id: str, turns: int = 3) -> list[Turn]:
        """Return the last ``turns`` exchanges, oldest first, for follow-ups.

        Only those messages are read, because this runs before every question.
        """
        _check_id(conversation_id)
        with self.read_sessions() as db:
            owned = db.scalar(
                select(Conversation.id).where(
                    Conversation.id == conversation_id,
                    Conversation.user_id == user_id,
                )
            )
            if owned is None:
                raise NotFound(conversation_id)
            recent = list(
                db.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.position.desc())
                    .limit(2 * turns + 1)
                    .options(selectinload(Message.sources))
                )
            )
        messages = recent[::-1]
        result: list[Turn] = []
        for index, message in enumerate(messages):
            if message.role != "user":
                continue
            answer = messages[index + 1] if index + 1 < len(messages) else None
            refs: tuple[str, ...] = ()
            if answer is not None and answer.role == "assistant":
                refs = tuple(source.ref for source in answer.sources)
            result.append(Turn(message.content, message.query or message.content, refs))
        return result[-turns:]

    def turn(
        self, user_id: str, started: StartedTurn
    ) -> tuple[Conversation, Message, Message]:
        """Read back a turn's conversation and its two messages.

        The messages come with their sources and the user's feedback, as in
        ``get``.
        """
        ids = [started.user_message.id, started.assistant_message.id]
        with self.read_sessions() as db:
            conversation = db.scalar(
                select(Conversation).where(
                    Conversation.id == started.conversation.id,
                    Conversation.user_id == user_id,
                )
            )
            rows = {
                message.id: message
                for message in db.scalars(
                    select(Message)
                    .where(Message.id.in_(ids))
                    .options(
                        selectinload(Message.sources),
                        selectinload(_own_feedback(user_id)),
                    )
                )
            }
        if conversation is None or len(rows) != len(ids):
            raise NotFound(started.conversation.id)
        return conversation, rows[ids[0]], rows[ids[1]]

    def start_turn(
        self, user_id: str, conversation_id: str, content: str, query: str
    ) -> StartedTurn:
        """Save the question and an empty streaming answer in one transaction."""
        for attempt in range(3):
            try:
                return self._start_turn(user_id, conversation_id, content, query)
            except IntegrityError:
                # Another request took the same position first; count again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_turn(
        self, user_id: str, conversation_id: str, content: str, query: str
    ) -> StartedTurn:
        now = _now()
        with self.sessions.begin() as db:
            conversation = self._owned(db, user_id, conversation_id)
            last = db.scalar(
                select(func.max(Message.position)).where(
                    Message.conversation_id == conversation.id
                )
            )
            position = 0 if last is None else last + 1
            question = Message(
                conversation_id=conversation.id,
                position=position,
                role="user",
                content=content,
                query=query,
                status="complete",
                created_at=now,
                updated_at=now,
            )
            answer = Message(
                conversation_id=conversation.id,
                position=position + 1,
                role="assistant",
                content="",
                status="streaming",
                created_at=now,
                updated_at=now,
            )
            db.add_all([question, answer])
            conversation.updated_at = now
            if conversation.title is None:
                conversation.title = self.titler(content)
            db.flush()
        with self._open_lock:
            self._open.add(answer.id)
        return StartedTurn(conversation, question, answer)

    def save_sources(self, message_id: str, sources: Sequence[dict[str, Any]]) -> None:
        """Store the sources of an answer; NotFound when it was deleted meanwhile."""
        try:
            self._save_sources(message_id, sources)
        except IntegrityError as error:
            raise NotFound(message_id) from error

    def _save_sources(self, message_id: str, sources: Sequence[dict[str, Any]]) -> None:
        with self.sessions.begin() as db:
            if db.get(Message, message_id) is None:
                raise NotFound(message_id)
            for source in sources:
                categories = source.get("categories") or []
                db.add(
                    MessageSource(
                        message_id=message_id,
                        rank=int(source["n"]),
                        ref=str(source["ref"])[:300],
                        he_ref=(str(source.get("he_ref") or "") or None),
                        language=source_language(source),
                        score=float(source.get("score") or 0.0),
                        verified=False,
                        book=source.get("book"),
                        category="/".join(categories)[:200] or None,
                    )
                )

    def save_partial(self, message_id: str, content: str) -> None:
        with self.sessions.begin() as db:
            db.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == "streaming")
                .values(content=content, updated_at=_now())
            )

    def finish(
        self,
        message_id: str,
        *,
        status: str,
        content: str,
        mode: str | None = None,
        provider: str | None = None,
        latency_ms: float | None = None,
        first_token_ms: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        verification: dict[str, Any] | None = None,
        verified_ranks: Sequence[int] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a streaming answer; a message is finished only once."""
        with self._open_lock:
            self._open.discard(message_id)
        now = _now()
        with self.sessions.begin() as db:
            message = db.get(Message, message_id, with_for_update=True)
            if message is None or message.status != "streaming":
                return
            message.status = status
            message.content = content
            message.mode = mode
            message.provider = provider
            message.latency_ms = latency_ms
            message.first_token_ms = first_token_ms
            message.prompt_tokens = prompt_tokens
            message.completion_tokens = completion_tokens
            message.verification = verification
            message.error = error
            message.updated_at = now
            if verified_ranks:
                db.execute(
                    update(MessageSource)
                    .where(
                        MessageSource.message_id == message_id,
                        MessageSource.rank.in_(list(verified_ranks)),
                    )
                    .values(verified=True)
                )
            db.execute(
                update(Conversation)
                .where(Conversation.id == message.conversation_id)
                .values(updated_at=now)
            )

    def recover_stale(self, older_than: timedelta) -> int:
        """Mark answers left streaming by a process that died as interrupted."""
        cutoff = _now() - older_than
        with self.sessions.begin() as db:
            result = db.execute(
                update(Message)
                .where(Message.status == "streaming", Message.updated_at < cutoff)
                .values(status="interrupted", error=SERVICE_STOPPED)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def interrupt_open(self) -> int:
        """Mark the answers this store started and did not finish as interrupted.

        For a process that stops while an answer thread is still blocked: the
        answer keeps the text last written by ``save_partial``. Returns how
        many rows changed.
        """
        with self._open_lock:
            ids = list(self._open)
            self._open.clear()
        if not ids:
            return 0
        with self.sessions.begin() as db:
            result = db.execute(
                update(Message)
                .where(Message.id.in_(ids), Message.status == "streaming")
                .values(status="interrupted", error=SERVICE_STOPPED, updated_at=_now())
            )
        return int(getattr(result, "rowcount", 0) or 0)

    # Feedback.

    def set_feedback(
        self, user_id: str, message_id: str, rating: int, comment: str | None
    ) -> Feedback:
        _check_id(message_id)
        now = _now()
        with self.sessions.begin() as db:
            self._owned_answer(db, user_id, message_id)
            row = db.scalar(
                select(Feedback).where(
                    Feedback.message_id == message_id, Feedback.user_id == user_id
                )
            )
            if row is None:
                row = Feedback(message_id=message_id, user_id=user_id, created_at=now)
                db.add(row)
            row.rating = rating
            row.comment = comment
            row.updated_at = now
            db.flush()
        return row

    def clear_feedback(self, user_id: str, message_id: str) -> None:
        """Remove the user's rating of an answer; an unrated answer is left as is.

        Raises NotFound when the message is not an answer in one of the
        user's conversations.
        """
        _check_id(message_id)
        with self.sessions.begin() as db:
            self._owned_answer(db, user_id, message_id)
            db.execute(
                delete(Feedback).where(
                    Feedback.message_id == message_id, Feedback.user_id == user_id
                )
            )

    def _owned_answer(self, db: Session, user_id: str, message_id: str) -> Message:
        message = db.scalar(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id == message_id, Conversation.user_id == user_id)
        )
        if message is None or message.role != "assistant":
            raise NotFound(message_id)
        return message

    def feedback_records(self, user_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Rated answers with their question and sources, oldest first.

        ``user_id`` limits the records to one user; None gives everyone's,
        for building evaluation sets.
        """
        query = (
            select(Feedback, Message, User.email)
            .join(Message, Message.id == Feedback.message_id)
            .join(User, User.id == Feedback.user_id)
            .options(selectinload(Message.sources))
            .order_by(Feedback.created_at, Feedback.id)
        )
        if user_id is not None:
            query = query.where(Feedback.user_id == user_id)
        with self.read_sessions() as db:
            for feedback, message, email in db.execute(query):
                question = db.scalar(
                    select(Message).where(
                        Message.conversation_id == message.conversation_id,
                        Message.position == message.position - 1,
                    )
                )
                yield {
                    "message_id": message.id,
                    "conversation_id": message.conversation_id,
                    "user": email if user_id is None else None,
                    "rating": "up" if feedback.rating > 0 else "down",
                    "comment": feedback.comment,
                    "question": question.content if question else None,
                    "query": question.query if question else None,
                    "answer": message.content,
                    "status": message.status,
                    "mode": message.mode,
                    "provider": message.provider,
                    "refs": [s.ref for s in message.sources],
                    "verified_refs": [s.ref for s in message.sources if s.verified],
                    "created_at": feedback.created_at.isoformat(),
                    "updated_at": feedback.updated_at.isoformat(),
                }


def _own_feedback(user_id: str) -> QueryableAttribute[Any]:
    """Return ``Message.feedback`` limited to one user's rows, for selectinload."""
    return Message.feedback.and_(Feedback.user_id == user_id)


def _check_id(identifier: str) -> None:
    """Treat anything that is not one of our ids as a row that does not exist."""
    if not _ID.fullmatch(identifier):
        raise NotFound(identifier)


def sefaria_url(ref: str) -> str:
    """Return the sefaria.org address of a ref.

    ``Rashi on Genesis 1:1:1`` becomes
    ``https://www.sefaria.org/Rashi_on_Genesis.1.1.1``.
    """
    words = ref.split(" ")
    address = words[-1] if len(words) > 1 and words[-1][:1].isdigit() else ""
    title = " ".join(words[:-1]) if address else ref
    path = title.replace(" ", "_")
    if address:
        path += "." + address.replace(":", ".")
    return SEFARIA + quote(path, safe="_.-,()'")


_BLOCK_START = re.compile(r"^(\s*)([#*+=|`~-])", re.MULTILINE)
_LIST_NUMBER = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)
_INLINE = str.maketrans(
    {
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "[": "\\[",
        "]": "\\]",
        "*": "\\*",
        "_": "\\_",
        "`": "\\`",
    }
)


def escape_markdown(text: str) -> str:
    """Make stored text show as plain text in Markdown.

    Without it a question could forge a heading, a link marked as a verified
    source, or HTML in the exported file.
    """
    escaped = text.translate(_INLINE)
    escaped = _LIST_NUMBER.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)
    return _BLOCK_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", escaped)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def to_markdown(conversation: Conversation) -> str:
    """Write the whole conversation as Markdown, sources linked to sefaria.org."""
    lines = [
        f"# {escape_markdown(conversation.title or DEFAULT_TITLE)}",
        "",
        f"Started {_stamp(conversation.created_at)}; "
        f"last activity {_stamp(conversation.updated_at)}.",
    ]
    for message in conversation.messages:
        who = "Learner" if message.role == "user" else "Torah Study"
        heading = f"## {who}, {_stamp(message.created_at)}"
        if message.role == "assistant" and message.status != "complete":
            heading += f" ({message.status})"
        body = escape_markdown(message.content.strip()) or "(no text)"
        lines += ["", heading, "", body]
        if message.role == "assistant" and message.sources:
            lines += ["", "Sources:", ""]
            for source in message.sources:
                mark = " (cited, verified)" if source.verified else ""
                lines.append(
                    f"{source.rank}. [{source.ref}]({sefaria_url(source.ref)}){mark}"
                )
    return "\n".join(lines) + "\n"
