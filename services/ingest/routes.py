"""HTTP routes: ``POST /v1/events`` and the vendor webhooks under ``/v1/sources``.

Every route follows the same order, cheapest refusal first: auth (the API key,
or for Stripe the presence and form of its signature header), content type, body
size (raw, then inflated in a worker thread), webhook signature, nesting depth,
JSON syntax, batch size, validation of *every* item (event-time window and
account ownership included), and only then dedupe and publish. Nothing is
published from a batch that has a single invalid item. Stripe, whose signature is
its only authentication, verifies it on the body as received, before inflating:
nothing unauthenticated is ever inflated or parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.datastructures import State

from healthstream.settings import ApiKey, Scope
from services.ingest.adapters import segment, stripe, zendesk
from services.ingest.adapters.base import Conversion
from services.ingest.adapters.signatures import (
    SignatureError,
    parse_stripe_header,
    verify_segment,
    verify_stripe,
    verify_zendesk,
)
from services.ingest.auth import require_ingest_key
from services.ingest.errors import ApiError, IngestAccepted, ItemError, error_responses
from services.ingest.parsing import (
    JSON_TYPES,
    NDJSON_TYPES,
    batch_items,
    check_batch_size,
    decode_body,
    parse_json,
    parse_ndjson,
    read_body,
    read_raw,
    require_media_type,
)
from services.ingest.pipeline import IngestPipeline
from services.ingest.settings import IngestSettings
from services.ingest.validation import Ownership, validate_items

router = APIRouter()

EVENT_REF = {"$ref": "#/components/schemas/Event"}
EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "description": 'One event, an array of events, or {"events": [...]}; or NDJSON '
        "(one event per line). Content-Encoding: gzip is accepted. Limits (configurable): "
        "5 MB after decompression and 10,000 events per request, else 413.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        EVENT_REF,
                        {"type": "array", "items": EVENT_REF},
                        {
                            "type": "object",
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": EVENT_REF,
                                }
                            },
                            "required": ["events"],
                            "additionalProperties": False,
                        },
                    ]
                }
            },
            "application/x-ndjson": {
                # NDJSON has no JSON Schema of its own: described as the array of its lines
                # (what OpenAPI 3.2 calls itemSchema); each line is one Event.
                "schema": {
                    "type": "array",
                    "items": EVENT_REF,
                    "description": "One Event JSON object per line (blank lines ignored).",
                }
            },
        },
    }
}


def _vendor_body(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }


def _state(request: Request) -> tuple[IngestSettings, IngestPipeline, State]:
    state = request.app.state
    return state.settings, state.pipeline, state


def _reject_invalid(pipeline: IngestPipeline, errors: list[ItemError]) -> None:
    if errors:
        pipeline.metrics.events_rejected.labels("invalid").inc(len(errors))
        raise ApiError(
            422,
            "validation_error",
            f"{len(errors)} item(s) are invalid; nothing from this request was published",
            errors=sorted(errors, key=lambda e: -1 if e.index is None else e.index),
        )


@router.post(
    "/v1/events",
    status_code=202,
    response_model=IngestAccepted,
    summary="Ingest canonical events (single, array, {events: [...]}, or NDJSON)",
    tags=["ingest"],
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=EVENTS_BODY,
)
async def ingest_events(
    request: Request, key: ApiKey = Depends(require_ingest_key)
) -> IngestAccepted:
    settings, pipeline, _ = _state(request)
    kind = require_media_type(request, JSON_TYPES | NDJSON_TYPES)
    body = await _read(request, settings)
    depth = settings.max_json_depth
    if kind in NDJSON_TYPES:
        items = parse_ndjson(body, depth)
    else:
        items = batch_items(parse_json(body, depth))
    check_batch_size(items, settings.max_batch_events)
    may_own = not settings.ownership_requires_admin or Scope.ADMIN in key.scopes
    validated = validate_items(
        items,
        default_source="api",
        window=settings.event_time_window,
        ownership=Ownership.ACCOUNT_EVENTS if may_own else Ownership.REFUSED,
    )
    _reject_invalid(pipeline, validated.errors)
    _count_ownership_ignored(pipeline, "api", validated.ownership_ignored)
    return await pipeline.submit(validated.events)


async def _read(request: Request, settings: IngestSettings) -> bytes:
    return await read_body(request, settings.max_body_bytes, settings.max_gzip_members)


def _count_ownership_ignored(pipeline: IngestPipeline, source: str, count: int) -> None:
    if count:
        pipeline.metrics.ownership_ignored.labels(source).inc(count)


async def _ingest_vendor(
    request: Request, body: bytes, convert: Callable[[Any], Conversion], source: str
) -> IngestAccepted:
    settings, pipeline, _ = _state(request)
    conversion = convert(parse_json(body, settings.max_json_depth))
    check_batch_size(conversion.items, settings.max_batch_events)
    validated = validate_items(
        conversion.items,
        default_source=source,
        window=settings.event_time_window,
        ownership=Ownership.NEVER,
    )
    errors = list(conversion.errors)
    for error in validated.errors:
        origin = conversion.origins[error.index] if error.index is not None else None
        errors.append(ItemError(index=origin, loc=error.loc, msg=error.msg))
    _reject_invalid(pipeline, errors)
    _count_ownership_ignored(pipeline, source, validated.ownership_ignored)
    return await pipeline.submit(validated.events, ignored=conversion.ignored)


def _signature_failed(request: Request, source: str, exc: SignatureError | str) -> ApiError:
    request.app.state.metrics.signature_failures.labels(source).inc()
    return ApiError(401, "invalid_signature", str(exc))


@router.post(
    "/v1/sources/segment",
    status_code=202,
    response_model=IngestAccepted,
    summary="Segment webhook: track, page, screen, identify, group, or a batch of them",
    tags=["sources"],
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=_vendor_body('A Segment message or {"batch": [...]} (Tracking API spec).'),
)
async def segment_webhook(
    request: Request,
    _key: ApiKey = Depends(require_ingest_key),
    x_signature: str | None = Header(
        default=None, description="hex HMAC-SHA1 of the body; required if a secret is set"
    ),
) -> IngestAccepted:
    settings, _, _ = _state(request)
    require_media_type(request, JSON_TYPES)
    body = await _read(request, settings)
    if settings.segment_shared_secret is not None:
        try:
            verify_segment(x_signature, body, settings.segment_shared_secret.get_secret_value())
        except SignatureError as exc:
            raise _signature_failed(request, "segment", exc) from None
    return await _ingest_vendor(request, body, segment.convert, "segment")


@router.post(
    "/v1/sources/zendesk",
    status_code=202,
    response_model=IngestAccepted,
    summary="Zendesk webhook: ticket events and satisfaction ratings",
    tags=["sources"],
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=_vendor_body(
        "A Zendesk ticket event webhook (zen:event-type:ticket.*) or a trigger body "
        "carrying a satisfaction_rating object."
    ),
)
async def zendesk_webhook(
    request: Request,
    _key: ApiKey = Depends(require_ingest_key),
    x_zendesk_webhook_signature: str | None = Header(default=None),
    x_zendesk_webhook_signature_timestamp: str | None = Header(default=None),
) -> IngestAccepted:
    settings, _, _ = _state(request)
    require_media_type(request, JSON_TYPES)
    body = await _read(request, settings)
    if settings.zendesk_webhook_secret is not None:
        try:
            verify_zendesk(
                x_zendesk_webhook_signature,
                x_zendesk_webhook_signature_timestamp,
                body,
                settings.zendesk_webhook_secret.get_secret_value(),
                settings.zendesk_signature_tolerance_seconds,
            )
        except SignatureError as exc:
            raise _signature_failed(request, "zendesk", exc) from None
    return await _ingest_vendor(request, body, zendesk.convert, "zendesk")


@router.post(
    "/v1/sources/stripe",
    status_code=202,
    response_model=IngestAccepted,
    summary="Stripe webhook: invoices and subscriptions (authenticated by Stripe-Signature)",
    tags=["sources"],
    responses=error_responses(400, 401, 413, 415, 422, 503),
    openapi_extra=_vendor_body("A Stripe Event object, exactly as Stripe sends it."),
)
async def stripe_webhook(
    request: Request,
    stripe_signature: str | None = Header(
        default=None,
        alias="Stripe-Signature",
        description="t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>",
    ),
) -> IngestAccepted:
    settings, _, _ = _state(request)
    # Stripe cannot send an API key: its signature is the authentication, so what can
    # be checked without the body (a secret configured, a well-formed header) is
    # checked before a single byte is read or inflated.
    if settings.stripe_webhook_secret is None:
        raise _signature_failed(
            request,
            "stripe",
            "Stripe webhooks are disabled: no HEALTHSTREAM_STRIPE_WEBHOOK_SECRET configured",
        )
    try:
        parse_stripe_header(stripe_signature)
    except SignatureError as exc:
        raise _signature_failed(request, "stripe", exc) from None
    require_media_type(request, JSON_TYPES)
    # Stripe signs the bytes it sends: they are verified as received, so nothing
    # unauthenticated is ever inflated or parsed.
    raw = await read_raw(request, settings.max_body_bytes)
    try:
        verify_stripe(
            stripe_signature,
            raw,
            settings.stripe_webhook_secret.get_secret_value(),
            settings.stripe_signature_tolerance_seconds,
        )
    except SignatureError as exc:
        raise _signature_failed(request, "stripe", exc) from None
    body = await decode_body(request, raw, settings.max_body_bytes, settings.max_gzip_members)
    return await _ingest_vendor(request, body, stripe.convert, "stripe")
