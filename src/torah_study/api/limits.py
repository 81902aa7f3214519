"""A cap on request body size, checked before the body is read."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bytes of a rejected body read and dropped before the 413 goes out. A server
# that closes the connection while body bytes are unread makes the kernel
# send a reset, and the client then loses the 413 itself.
# NOTE: a client still sending past this many bytes gets the reset.
DRAIN_BYTES = 1_048_576


class BodySizeLimit:
    """Middleware that returns 413 for bodies larger than ``limit`` bytes.

    A declared Content-Length is checked at once; a chunked body is counted
    as it arrives.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.limit
            except ValueError:
                await _reply(send, 400, "The Content-Length header is not a number.")
                return
            if too_large:
                await _drain(receive, more_body=True)
                await _reply(send, 413, self._message())
                return

        received = 0
        too_large = False

        async def counted_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # End the body here; the reply is replaced below.
                    too_large = True
                    await _drain(receive, message.get("more_body", False))
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def watched_send(message: Message) -> None:
            if not too_large:
                await send(message)
            elif message["type"] == "http.response.start":
                await _reply(send, 413, self._message())

        await self.app(scope, counted_receive, watched_send)

    def _message(self) -> str:
        return f"The request body is larger than {self.limit} bytes."


async def _drain(receive: Receive, more_body: bool) -> None:
    """Read and drop the rest of a request body, at most DRAIN_BYTES of it."""
    drained = 0
    while more_body and drained < DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        more_body = message.get("more_body", False)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
