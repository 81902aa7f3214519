"""Logs, metrics and traces of the service.

``answer/`` and ``retrieval/`` use ``stage`` and the ``observe_*`` helpers,
which are cheap while tracing is off. Only ``observability.middleware``, the
ASGI middleware, imports Starlette, and nothing here imports FastAPI.
"""

from torah_study.observability.logs import add_secret, conversation_id, request_id
from torah_study.observability.metrics import (
    observe_answer,
    observe_answer_error,
    observe_provider_error,
)
from torah_study.observability.tracing import Stage, record_span, stage

__all__ = [
    "Stage",
    "add_secret",
    "conversation_id",
    "observe_answer",
    "observe_answer_error",
    "observe_provider_error",
    "record_span",
    "request_id",
    "stage",
]
