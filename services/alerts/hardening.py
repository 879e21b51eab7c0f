"""What the HTTP layer does before and around any route: limits, headers, error shape, docs.

- Bodies are limited (``alerts_max_body_bytes``) while they are read, so a
  50 MB POST is refused with a 413 before anything parses it.
- A validation error names the field and the problem, never echoes the input
  (a 50 MB body must not come back as a 52 MB reply; NaN or a lone surrogate
  cannot even be encoded back as JSON).
- Every answer carries a Content-Security-Policy that allows only this origin's
  scripts, styles and connections, plus ``X-Frame-Options: DENY`` and
  ``nosniff``: the page keeps an API key in local storage, so no other
  origin's code may run on it, and it may not be framed.
- ``/docs`` is Swagger UI from the ``swagger-ui-bundle-v2`` wheel, served from
  this origin (no CDN: works offline, and no third-party script next to the key).
"""

from __future__ import annotations

from typing import Any

import orjson
import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
#: Longest ``msg`` of a validation error (pydantic's own messages are far shorter).
_MAX_MESSAGE = 300


class Hardening:
    """ASGI middleware: body size limit (413 JSON) and security headers on every answer."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit or declared < 0:
                    await self._refuse(send, declared)
                    return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            # Over the limit: answer 413 now and tell the app the client left, so
            # whatever it was reading is dropped (its own answer is discarded below).
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        await self._refuse(send, seen)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in SECURITY_HEADERS}
                ]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)

    async def _refuse(self, send: Send, size: int) -> None:
        body = orjson.dumps(
            {
                "detail": f"request body too large: at most {self.max_body} bytes"
                if size >= 0
                else "invalid Content-Length"
            }
        )
        status = 413 if size >= 0 else 400
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *SECURITY_HEADERS,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _clean(error: dict[str, Any]) -> dict[str, Any]:
    """loc, msg and type of one pydantic error; the offending input is never echoed."""
    loc = [str(part)[:100] if isinstance(part, str) else part for part in error.get("loc", ())]
    message = str(error.get("msg", "invalid value"))
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return {"loc": loc, "msg": message, "type": str(error.get("type", "value_error"))}


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean(error) for error in exc.errors()[:20]]
    return JSONResponse({"detail": errors}, status_code=422)


DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>healthstream alerts · API</title>
  <link rel="stylesheet" href="/docs-assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi="/openapi.json"></div>
  <script src="/docs-assets/swagger-ui-bundle.js"></script>
  <script src="/docs-init.js"></script>
</body>
</html>
"""

# An external file, not an inline <script>: the Content-Security-Policy forbids inline code.
DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapi,
  dom_id: "#swagger-ui",
  deepLinking: true,
});
"""


def install(app: FastAPI, max_body: int) -> None:
    """Limits, headers, error shape and local docs on ``app`` (create it with docs_url=None)."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(Hardening, max_body=max_body)
    app.mount(
        "/docs-assets",
        StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    @app.get("/docs-init.js", include_in_schema=False)
    async def docs_init() -> HTMLResponse:
        return HTMLResponse(DOCS_INIT, media_type="text/javascript")
