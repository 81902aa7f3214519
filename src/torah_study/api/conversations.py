"""Conversation routes: list, read, rename, delete, export, ask, feedback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from torah_study import observability
from torah_study.api.auth import AccountsDep, IdentityDep
from torah_study.api.common import (
    encode_event,
    pump,
    refresh_library,
    reserve_question,
    resolve_filters,
)
from torah_study.api.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    ConversationRename,
    FeedbackCreate,
    FeedbackOut,
    MessageCreate,
    MessageOut,
    SourceOut,
    TurnResponse,
)
from torah_study.conversations.chat import DELETED, ConversationChat
from torah_study.conversations.store import (
    BadCursor,
    NotFound,
    sefaria_url,
    to_markdown,
)
from torah_study.db.models import Conversation, Message
from torah_study.index.base import Filters

logger = logging.getLogger(__name__)

NOT_FOUND = "No such conversation."
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def get_chat(request: Request) -> ConversationChat:
    refresh_library(request.app)
    chat: ConversationChat = request.app.state.chat
    return chat


ChatDep = Annotated[ConversationChat, Depends(get_chat)]


def conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        id=conversation.id,
        title=conversation.title,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
    )


def message_out(message: Message, sources: bool = True) -> MessageOut:
    return MessageOut(
        id=message.id,
        position=message.position,
        role=message.role,
        content=message.content,
        status=message.status,
        query=message.query,
        mode=message.mode,
        provider=message.provider,
        latency_ms=message.latency_ms,
        first_token_ms=message.first_token_ms,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        verification=message.verification,
        error=message.error,
        created_at=message.created_at,
        updated_at=message.updated_at,
        sources=[
            SourceOut(
                rank=s.rank,
                ref=s.ref,
                he_ref=s.he_ref,
                language=s.language,
                score=s.score,
                verified=s.verified,
                book=s.book,
                category=s.category,
                url=sefaria_url(s.ref),
            )
            for s in message.sources
        ]
        if sources
        else [],
        feedback=_rating(message),
    )


def _rating(message: Message) -> Literal["up", "down"] | None:
    """Return the loaded feedback of ``message`` as "up", "down" or None.

    The store loads only the requesting user's row, so there is at most one.
    """
    if not message.feedback:
        return None
    return "up" if message.feedback[0].rating > 0 else "down"


def detail_out(conversation: Conversation) -> ConversationDetail:
    return ConversationDetail(
        **conversation_out(conversation).model_dump(),
        messages=[message_out(m) for m in conversation.messages],
    )


router = APIRouter(tags=["conversations"])


@router.post("/conversations", status_code=201, response_model=ConversationOut)
def create_conversation(
    identity: IdentityDep,
    accounts: AccountsDep,
    body: ConversationCreate | None = None,
) -> ConversationOut:
    """Start an empty conversation (untitled until its first real question)."""
    title = body.title if body else None
    return conversation_out(accounts.conversations.create(identity.user.id, title))


@router.get("/conversations", response_model=ConversationPage)
def list_conversations(
    identity: IdentityDep,
    accounts: AccountsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ConversationPage:
    """Conversations by newest activity first; pass ``next_cursor`` for more."""
    try:
        page = accounts.conversations.page(identity.user.id, limit, cursor)
    except BadCursor as error:
        raise HTTPException(422, str(error)) from error
    return ConversationPage(
        items=[conversation_out(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses={404: {}},
)
def get_conversation(
    conversation_id: str, identity: IdentityDep, accounts: AccountsDep
) -> ConversationDetail:
    """Return one conversation with its messages, sources and the user's ratings."""
    try:
        conversation = accounts.conversations.get(identity.user.id, conversation_id)
    except NotFound as error:
        raise HTTPException(404, NOT_FOUND) from error
    return detail_out(conversation)


@router.patch(
    "/conversations/{conversation_id}",
    response_model=ConversationOut,
    responses={404: {}},
)
def rename_conversation(
    conversation_id: str,
    body: ConversationRename,
    identity: IdentityDep,
    accounts: AccountsDep,
) -> ConversationOut:
    """Rename a conversation."""
    try:
        conversation = accounts.conversations.rename(
            identity.user.id, conversation_id, body.title
        )
    except NotFound as error:
        raise HTTPException(404, NOT_FOUND) from error
    return conversation_out(conversation)


@router.delete("/conversations/{conversation_id}", status_code=204, responses={404: {}})
def delete_conversation(
    conversation_id: str, identity: IdentityDep, accounts: AccountsDep
) -> Response:
    """Delete a conversation with its messages, sources and feedback."""
    try:
        accounts.conversations.delete(identity.user.id, conversation_id)
    except NotFound as error:
        raise HTTPException(404, NOT_FOUND) from error
    return Response(status_code=204)


@router.get(
    "/conversations/{conversation_id}/export",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}}, 404: {}},
)
def export_conversation(
    conversation_id: str, identity: IdentityDep, accounts: AccountsDep
) -> Response:
    """Download the conversation as Markdown, sources linked to sefaria.org."""
    try:
        conversation = accounts.conversations.get(identity.user.id, conversation_id)
    except NotFound as error:
        raise HTTPException(404, NOT_FOUND) from error
    return Response(
        to_markdown(conversation),
        media_type="text/markdown; charset=utf-8",
        headers={
            "Content-Disposition": (
                f'attachment; filename="conversation-{conversation.id}.md"'
            )
        },
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=TurnResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        404: {},
        422: {},
        429: {},
    },
)
async def post_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    identity: IdentityDep,
    accounts: AccountsDep,
    chat: ChatDep,
    stream: Annotated[bool | None, Query()] = None,
) -> Any:
    """Ask a question in a conversation; both messages are saved by the server.

    With ``stream=true`` (or ``Accept: text/event-stream``) the answer comes
    as server-sent events: ``turn`` (ids and the retrieval query), then
    ``sources``, ``token``…, ``verification`` and ``done`` or ``error``.
    """
    # The answer's log lines, on this task and the thread that streams it,
    # carry the conversation id.
    observability.conversation_id.set(conversation_id)
    services = request.app.state.services
    filters: Filters = resolve_filters(services, body.books, body.categories)
    if stream is None:
        stream = "text/event-stream" in request.headers.get("accept", "")
    # Counted before anything is saved, so a refused question leaves no row.
    counted = await run_in_threadpool(reserve_question, accounts, identity.user.id)
    try:
        run = await run_in_threadpool(
            chat.start, identity.user.id, conversation_id, body.content, filters
        )
    except NotFound as error:
        await run_in_threadpool(accounts.questions.release, counted)
        raise HTTPException(404, NOT_FOUND) from error

    started = run.started
    if not stream:
        async for _ in pump(run.events, run.cancel, request.app.state.drain):
            pass
        try:
            conversation, question, answer = await run_in_threadpool(
                accounts.conversations.turn, identity.user.id, started
            )
        except NotFound as error:
            raise HTTPException(404, DELETED) from error
        return TurnResponse(
            conversation=conversation_out(conversation),
            query=run.query,
            user_message=message_out(question),
            assistant_message=message_out(answer),
        )

    opening = {
        "conversation_id": started.conversation.id,
        "title": started.conversation.title,
        "user_message_id": started.user_message.id,
        "assistant_message_id": started.assistant_message.id,
        "query": run.query,
    }

    async def messages() -> AsyncIterator[dict[str, str]]:
        pumping = False
        try:
            yield {"event": "turn", "data": json.dumps(opening, ensure_ascii=False)}
            pumping = True
            async for event in pump(run.events, run.cancel, request.app.state.drain):
                yield encode_event(event)
        finally:
            if not pumping:
                # The client left before the answer began.
                await run_in_threadpool(chat.abandon, started)

    return EventSourceResponse(
        messages(),
        ping=request.app.state.settings.keepalive_seconds,
        headers=STREAM_HEADERS,
    )


@router.put(
    "/messages/{message_id}/feedback",
    response_model=FeedbackOut,
    responses={404: {}},
)
def put_feedback(
    message_id: str,
    body: FeedbackCreate,
    identity: IdentityDep,
    accounts: AccountsDep,
) -> FeedbackOut:
    """Rate an answer up or down, with an optional comment; rating again replaces it."""
    try:
        row = accounts.conversations.set_feedback(
            identity.user.id, message_id, 1 if body.rating == "up" else -1, body.comment
        )
    except NotFound as error:
        raise HTTPException(404, "Answer not found.") from error
    return FeedbackOut(
        message_id=message_id,
        rating=body.rating,
        comment=row.comment,
        updated_at=row.updated_at,
    )


@router.delete("/messages/{message_id}/feedback", status_code=204, responses={404: {}})
def delete_feedback(
    message_id: str, identity: IdentityDep, accounts: AccountsDep
) -> Response:
    """Remove the user's rating of an answer; removing a missing rating is a no-op."""
    try:
        accounts.conversations.clear_feedback(identity.user.id, message_id)
    except NotFound as error:
        raise HTTPException(404, "Answer not found.") from error
    return Response(status_code=204)


@router.get("/feedback/export", response_class=Response)
def export_feedback(identity: IdentityDep, accounts: AccountsDep) -> Response:
    """Download the user's rated answers as JSON Lines, for evaluation sets."""
    lines = [
        json.dumps(record, ensure_ascii=False)
        for record in accounts.conversations.feedback_records(identity.user.id)
    ]
    return Response(
        "".join(line + "\n" for line in lines),
        media_type="application/x-ndjson; charset=utf-8",
    )
