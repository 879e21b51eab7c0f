"""Assemble the alerts service: database, consumer, outbox worker, sweeper, HTTP API.

``create_app(settings)`` returns a FastAPI app whose lifespan migrates the
database and starts the background tasks, so ``uvicorn`` alone runs the whole
service. :func:`serve` runs it in-process on a port (tests, the demo);
``healthstream alerts serve`` is the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from healthstream.http import probes_router
from healthstream.kafka import KafkaConfigurationError, broker_reachable
from healthstream.supervisor import Supervisor
from services.alerts.consumer import AlertConsumer, HealthConsumer
from services.alerts.db import make_engine, make_sessionmaker
from services.alerts.gate import NoGate, WriteGate
from services.alerts.hardening import install as install_hardening
from services.alerts.migrate import upgrade
from services.alerts.models import Alert
from services.alerts.outbox import OutboxWorker
from services.alerts.routing import RoutingConfig
from services.alerts.settings import AlertsSettings
from services.alerts.stream import Broadcaster
from services.alerts.sweeper import Sweeper

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"


class ConfigError(ValueError):
    pass


def check_routing(settings: AlertsSettings, routing: RoutingConfig) -> None:
    """Refuse to start with a JSON webhook nobody could verify."""
    unsigned = [
        hook.name
        for hook in routing.webhooks
        if hook.format == "json" and not (hook.secret or settings.alerts_webhook_secret)
    ]
    if unsigned:
        raise ConfigError(
            "JSON webhooks need an HMAC secret (set `secret` or "
            "HEALTHSTREAM_ALERTS_WEBHOOK_SECRET): " + ", ".join(unsigned)
        )


@dataclass
class AlertsService:
    """Everything the running service shares; one per process."""

    settings: AlertsSettings
    consume: bool = True
    deliver: bool = True
    engine: AsyncEngine = field(init=False)
    sessions: async_sessionmaker[Any] = field(init=False)
    #: For reads only; on SQLite a separate engine whose transactions take no write lock.
    read_sessions: async_sessionmaker[Any] = field(init=False)
    read_engine: AsyncEngine = field(init=False)
    #: Alerts before health updates on SQLite's single writer lock (see gate.py).
    gate: WriteGate = field(init=False)
    routing: RoutingConfig = field(init=False)
    known_csms: set[str] = field(init=False)
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    consumer: AlertConsumer | None = None
    health_consumer: HealthConsumer | None = None
    outbox: OutboxWorker | None = None
    sweeper: Sweeper | None = None
    #: Runs the consumers, the outbox worker and the sweeper; /healthz asks it.
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.routing = RoutingConfig.load(self.settings.alerts_routing_path)
        check_routing(self.settings, self.routing)
        #: Who ``assign`` accepts: the routing config's owners and the CSMs of API keys.
        self.known_csms = self.routing.known_owners() | {
            key.csm for key in self.settings.api_keys if key.csm
        }
        self.engine = make_engine(self.settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        if self.engine.dialect.name == "sqlite":
            self.read_engine = make_engine(self.settings.database_url, read_only=True)
            self.gate = WriteGate()
        else:
            self.read_engine = self.engine
            self.gate = NoGate()
        self.read_sessions = make_sessionmaker(self.read_engine)
        self.supervisor = Supervisor(
            "alerts",
            unhealthy_after_s=self.settings.task_unhealthy_after_s,
            fatal=(KafkaConfigurationError,),
        )

    def changed(self, alerts: list[Alert], new_deliveries: bool = False) -> None:
        """After commit: push to SSE clients and wake the outbox worker."""
        for alert in alerts:
            self.broadcaster.publish(alert)
        if new_deliveries and self.outbox is not None:
            self.outbox.wake.set()

    async def start(self) -> None:
        await upgrade(self.engine)
        if self.deliver:
            self.outbox = OutboxWorker(
                self.settings, self.sessions, self.routing, read_sessions=self.read_sessions
            )
            self.supervisor.start("alerts-outbox", self.outbox.run)
            self.sweeper = Sweeper(self.settings, self.sessions, self.routing, self.changed)
            self.supervisor.start("alerts-sweeper", self.sweeper.run)
        if self.consume:
            self.consumer = AlertConsumer(
                self.settings,
                self.sessions,
                self.routing,
                lambda alerts: self.changed(alerts, new_deliveries=True),
                self.changed,
                gate=self.gate,
            )
            self.supervisor.start("alerts-consumer", self.consumer.run)
            # Health updates in their own consumer and transactions: never ahead of an alert.
            self.health_consumer = HealthConsumer(
                self.settings, self.sessions, self.gate, on_resolved=self.changed
            )
            self.supervisor.start("alerts-health-consumer", self.health_consumer.run)

    async def stop(self) -> None:
        await self.supervisor.stop()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        if self.consume:
            checks["kafka"] = await broker_reachable(self.settings)
            checks["consumer"] = self.consumer is not None and self.consumer.running
            checks["health_consumer"] = (
                self.health_consumer is not None and self.health_consumer.running
            )
        checks.update(self.supervisor.liveness())
        return checks


def create_app(settings: AlertsSettings, *, consume: bool = True, deliver: bool = True) -> FastAPI:
    """The HTTP app; its lifespan runs migrations and the background workers."""
    from services.alerts.api import build_router

    service = AlertsService(settings, consume=consume, deliver=deliver)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="healthstream alerts",
        version="1",
        description="Risk alerts for customer-success managers: triage, routing, delivery.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    install_hardening(app, settings.alerts_max_body_bytes)
    app.include_router(probes_router(service.readiness, liveness=service.supervisor.errors))
    app.include_router(build_router(service))
    web_dir = settings.alerts_web_dir or WEB_DIR
    if web_dir.is_dir():

        @app.get("/accounts/{account_id}", include_in_schema=False)
        async def account_page(account_id: str) -> FileResponse:
            """The page's shell; it reads the account from the path and asks the API."""
            return FileResponse(web_dir / "index.html", media_type="text/html")

        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
    else:
        log.warning("no web directory at %s: the CSM page is not served", web_dir)
    return app


@contextlib.asynccontextmanager
async def serve(
    settings: AlertsSettings, port: int | None = None, **options: Any
) -> AsyncIterator[str]:
    """Run the whole service in this event loop; yields its base URL."""
    app = create_app(settings, **options)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.alerts_port if port is None else port,
        log_level="warning",
        lifespan="on",
        # Open SSE streams never end by themselves: do not wait for them forever.
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("alerts server exited during start-up")
        await asyncio.sleep(0.05)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        await task
