"""Pieces shared by the route modules: services, filters and SSE encoding."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from torah_study.answer.pipeline import (
    Event,
    SourcesEvent,
    TokenEvent,
    VerificationEvent,
)
from torah_study.index.base import Filters
from torah_study.library.refs import RefError
from torah_study.service import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def resolve_filters(
    services: Services, books: list[str], categories: list[str]
) -> Filters:
    """Resolve filter names against the catalog; unknown names are a 422."""
    try:
        titles, names = services.catalog.resolve_filters(books, categories)
    except RefError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error
    return Filters(titles, names)


def encode_event(event: Event) -> dict[str, str]:
    """Turn a pipeline event into an SSE message with a JSON data field."""
    payload: Any
    if isinstance(event, TokenEvent):
        payload = event.text
    elif isinstance(event, SourcesEvent):
        payload = {"sources": event.sources, "mode": event.mode}
    elif isinstance(event, VerificationEvent):
        payload = event.report
    else:
        payload = {k: v for k, v in asdict(event).items() if k != "kind"}
    return {"event": event.kind, "data": json.dumps(payload, ensure_ascii=False)}
