"""The ingest FastAPI application, built by :func:`create_app` from settings.

A factory (not a module-level app) so tests, benchmarks and the CLI each get
their own producer, dedupe window and metrics registry.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from healthstream.http import probes_router
from healthstream.kafka import broker_reachable
from schemas import Event
from services.ingest.dedupe import DedupeWindow
from services.ingest.drain import DrainRefusedBody
from services.ingest.errors import OrjsonResponse, install_error_handlers
from services.ingest.metrics import IngestMetrics
from services.ingest.pipeline import IngestPipeline
from services.ingest.publisher import Publisher
from services.ingest.routes import router
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

DESCRIPTION = """
The front door for product telemetry, support tickets and billing events.

Every accepted event was acknowledged by the broker (acks=all) before the
`202` was sent. Batches are validated whole: one invalid item and nothing is
published (`422`, one error per bad item). See docs/ingest.md.
"""

#: Where the API docs' JavaScript, CSS and favicon are served from: this service
#: itself (fastapi-offline ships Swagger UI and ReDoc), never a CDN, so /docs works
#: offline and no third-party script runs on an origin that handles API keys.
DOCS_ASSETS = "/docs/assets"


def event_openapi_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The Event contract as OpenAPI components, with ingest's own event-time bounds said."""
    schema = Event.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    props = schema["properties"]
    props["occurred_at"]["description"] = (
        "Event time, RFC 3339 with a zone. Ingest refuses (422) times before "
        "event_time_min (1970-01-01T00:00:00Z) or more than event_time_max_future_seconds "
        "(300) ahead of its clock."
    )
    return schema, defs


class RequestMetrics:
    """Pure ASGI middleware: count requests by route template (bounded label set) and status."""

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, str(status)).inc()


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    metrics = IngestMetrics()
    publisher = Publisher(settings, metrics)
    dedupe = DedupeWindow(settings.dedupe_window_seconds, settings.dedupe_max_entries)
    pipeline = IngestPipeline(settings, publisher, dedupe, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()

    app = FastAPIOffline(
        title="healthstream ingest",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        static_url=DOCS_ASSETS,
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    app.state.publisher = publisher
    install_error_handlers(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> OrjsonResponse:
        # A bug, not bad input: log it with the route (never the headers or key).
        log.exception("unhandled error", extra={"path": request.url.path})
        return OrjsonResponse(
            {"error": "internal_error", "message": "unexpected server error"}, status_code=500
        )

    async def readiness() -> dict[str, bool]:
        checks = {"broker": await broker_reachable(settings, timeout=2.0)}
        if publisher.misconfigured is not None:
            checks["producer_configuration"] = False
        return checks

    def liveness() -> dict[str, str]:
        # A configuration the broker refuses does not heal: failing liveness makes the
        # orchestrator restart the process, whose start-up then exits naming the setting.
        if publisher.misconfigured is not None:
            return {"producer": publisher.misconfigured}
        return {}

    app.include_router(probes_router(readiness, registry=metrics.registry, liveness=liveness))
    app.include_router(router)
    app.add_middleware(DrainRefusedBody, max_bytes=settings.max_discard_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            event, defs = event_openapi_schema()
            schemas.update(defs)
            schemas["Event"] = event
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
