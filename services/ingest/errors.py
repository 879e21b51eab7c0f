"""One JSON error shape for every failure, and the response models OpenAPI documents.

Clients (and the Python client in :mod:`services.ingest.client`) branch on the
status code and on ``error``; ``message`` is for humans; ``errors`` lists every
bad item of a batch so a producer can fix all of them in one go.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class OrjsonResponse(JSONResponse):
    """JSON via orjson: fast, and it never chokes on the odd float or string."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ItemError(BaseModel):
    """One problem with one item of a batch."""

    index: int | None = Field(
        description="Position of the bad item in the batch (0-based); null for the envelope."
    )
    loc: list[str | int] = Field(
        description='Path to the bad field inside the item, e.g. ["occurred_at"] or '
        '["properties", "amount"]; empty when the item itself is wrong.'
    )
    msg: str = Field(description="What is wrong, in words.")


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx answer."""

    error: str = Field(
        description="Machine-readable code: malformed_json, json_too_deep, unauthorized, "
        "forbidden, payload_too_large, unsupported_media_type, validation_error, "
        "broker_unavailable, backpressure, invalid_signature, not_found, method_not_allowed, "
        "bad_request."
    )
    message: str = Field(description="Human-readable explanation.")
    errors: list[ItemError] | None = Field(
        default=None, description="Every invalid item (422 only)."
    )
    line: int | None = Field(default=None, description="1-based line of a JSON syntax error.")
    column: int | None = Field(default=None, description="1-based column of a JSON syntax error.")


class IngestAccepted(BaseModel):
    """The broker acknowledged every accepted event (acks=all) before this was sent."""

    accepted: int = Field(ge=0, description="Events written to their topic.")
    duplicates: int = Field(
        ge=0, description="Events skipped because their event_id was seen within the window."
    )
    dead_lettered: int = Field(
        default=0,
        ge=0,
        description="Valid events that could not be written to their topic (e.g. too large) "
        "and were written to the topic's .dlq with the reason instead.",
    )
    ignored: int = Field(
        default=0,
        ge=0,
        description="Vendor webhook messages of a kind healthstream does not track "
        "(adapters only), acknowledged so the vendor does not retry them.",
    )


class ApiError(Exception):
    """Raised anywhere in request handling; rendered as :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        errors: list[ItemError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=error, message=message, errors=errors, **extra)
        self.headers = headers or {}


def error_response(exc: ApiError) -> OrjsonResponse:
    # Optional top-level fields are left out when unset; an item's null index stays.
    body = {k: v for k, v in exc.body.model_dump().items() if v is not None}
    return OrjsonResponse(body, status_code=exc.status, headers=exc.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def install_error_handlers(app: FastAPI) -> None:
    """Replace FastAPI's default handlers so even routing errors answer in our JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> OrjsonResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(
            ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
        )

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        items = [
            ItemError(index=None, loc=[str(p) for p in e.get("loc", ())], msg=str(e.get("msg")))
            for e in exc.errors()
        ]
        return error_response(
            ApiError(422, "validation_error", "the request is invalid", errors=items)
        )


#: OpenAPI ``responses=`` fragments, so every route documents every error it can return.
def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Malformed JSON (with line and column), JSON nested deeper than max_json_depth, "
        "or an unreadable gzip body (too many members, truncated, corrupt).",
        401: "Missing or unknown API key, or an invalid/expired webhook signature.",
        403: "The API key lacks the `ingest` scope.",
        413: "Body (after gunzip) or batch over the configured limits.",
        415: "Content-Type is not application/json or application/x-ndjson, "
        "or Content-Encoding is not gzip/identity.",
        422: "At least one item is invalid: one error per bad item; nothing was published.",
        503: "Broker unreachable or producer buffer full; retry after `Retry-After` seconds.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": described[code]}
        if code == 503:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        out[code] = entry
    return out
