"""Read and discard the rest of a refused request body, so the client sees the answer.

An HTTP server that answers before it read the request body (a 413 for a body
over the limit, a 401 before an unauthenticated upload) and then closes the
connection leaves unread bytes in the kernel's receive buffer; Linux then sends
a TCP reset, and most clients report "connection reset" instead of the JSON
error already sent. Discarding the remaining body first (bounded: past
``max_bytes`` the connection is cut after all) turns that into a clean answer.
Nothing is buffered: each chunk is dropped as it arrives.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class DrainRefusedBody:
    """Pure ASGI middleware: before an error response starts, drain the unread body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        finished = False
        started = False

        async def tracked_receive() -> Message:
            nonlocal finished, started
            message = await receive()
            started = True
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                finished = True
            return message

        async def guarded_send(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and message["status"] >= 400
                and not finished
                and not (not started and _expects_continue(scope))
                and _declared_length(scope) <= self.max_bytes
            ):
                await self._discard(tracked_receive)
            await send(message)

        await self.app(scope, tracked_receive, guarded_send)

    async def _discard(self, receive: Receive) -> None:
        discarded = 0
        while discarded <= self.max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            discarded += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


def _expects_continue(scope: Scope) -> bool:
    """A client waiting for ``100 Continue`` has sent no body: there is nothing to drain."""
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", [])
    )


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0
