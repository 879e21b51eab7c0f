"""Outbox worker: sends pending deliveries, in order per account and destination.

At-least-once: a delivery is marked ``delivered`` only after the receiver
answered 2xx, so a crash between the two re-sends it after restart with the same
``X-Healthstream-Delivery`` id (receivers dedupe on it). Only the oldest pending
delivery of each (account, destination) is eligible, so a receiver that is down
delays an account's alerts but never reorders them. After
``alerts_delivery_max_attempts`` failures a delivery is ``dead`` (visible in
``GET /v1/deliveries?state=dead``) and the next one of the account proceeds.

One worker per database: run one alerts-service replica (or give the others
``--no-delivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from healthstream import retry
from services.alerts import metrics
from services.alerts.db import OutboxRow, utcnow
from services.alerts.models import DeliveryState
from services.alerts.routing import RoutingConfig
from services.alerts.settings import AlertsSettings
from services.alerts.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from services.alerts.store import outbox_stats

log = logging.getLogger(__name__)


def render(row: OutboxRow, secret: str | None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery; the body is stable across retries."""
    payload: dict[str, Any] = dict(row.payload)
    headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(row.id)}
    if row.format == "json":
        payload["delivery_id"] = row.id
        body = orjson.dumps(payload)
        if secret:
            stamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(secret, stamp, body)
        return body, headers
    return orjson.dumps(payload), headers


class OutboxWorker:
    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[Any],
        routing: RoutingConfig,
        client: httpx.AsyncClient | None = None,
        read_sessions: async_sessionmaker[Any] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.read_sessions = read_sessions or sessions
        self.routing = routing
        self.wake = asyncio.Event()
        self._client = client
        self._concurrency = asyncio.Semaphore(16)

    def _secret(self, destination: str) -> str | None:
        hook = self.routing.webhook(destination)
        if hook is not None and hook.secret:
            return hook.secret
        return self.settings.alerts_webhook_secret or None

    async def run(self) -> None:
        client = self._client or httpx.AsyncClient(timeout=self.settings.alerts_delivery_timeout)
        try:
            while True:
                # Clear before looking, so a wake-up during the pass is not lost.
                # A failing pass (database gone) raises: the supervisor restarts it.
                self.wake.clear()
                if not await self.run_once(client):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self.wake.wait(), self.settings.alerts_outbox_poll_interval
                        )
        finally:
            if self._client is None:
                await client.aclose()

    async def _due_heads(self) -> list[OutboxRow]:
        """The oldest pending delivery of each (account, destination), when it is due.

        Chosen in SQL, so a backlog of one account (receiver down) never hides
        another account's deliveries behind a batch limit.
        """
        now = utcnow()
        heads = (
            select(func.min(OutboxRow.id))
            .where(OutboxRow.state == DeliveryState.PENDING.value)
            .group_by(OutboxRow.account_id, OutboxRow.destination)
        )
        async with self.read_sessions() as session:
            rows = list(
                await session.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.id.in_(heads.scalar_subquery()))
                    .where(OutboxRow.next_attempt_at <= now)
                    .order_by(OutboxRow.id)
                    .limit(self.settings.alerts_outbox_batch)
                )
            )
            depth, oldest = await outbox_stats(session)
        metrics.OUTBOX_DEPTH.set(depth)
        metrics.OUTBOX_OLDEST_AGE.set((now - oldest).total_seconds() if oldest else 0.0)
        return rows

    async def run_once(self, client: httpx.AsyncClient) -> bool:
        """One pass; True if anything was attempted (so the caller loops at once)."""
        heads = await self._due_heads()
        if not heads:
            return False
        await asyncio.gather(*(self._attempt(client, row) for row in heads))
        return True

    async def _attempt(self, client: httpx.AsyncClient, row: OutboxRow) -> None:
        async with self._concurrency:
            body, headers = render(row, self._secret(row.destination))
            error: str | None = None
            try:
                response = await client.post(row.url, content=body, headers=headers)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
            await self._record(row, error)

    async def _record(self, row: OutboxRow, error: str | None) -> None:
        labels = {"reason": row.reason, "channel": row.format}
        now = utcnow()
        async with self.sessions() as session, session.begin():
            stored = await session.get(OutboxRow, row.id)
            if stored is None or stored.state != DeliveryState.PENDING.value:
                return
            stored.attempts += 1
            if error is None:
                stored.state = DeliveryState.DELIVERED.value
                stored.delivered_at = now
                stored.last_error = None
            else:
                stored.last_error = error
                if stored.attempts >= self.settings.alerts_delivery_max_attempts:
                    stored.state = DeliveryState.DEAD.value
                else:
                    delay = retry.delay(
                        stored.attempts,
                        self.settings.alerts_delivery_backoff_base,
                        self.settings.alerts_delivery_backoff_max,
                    )
                    stored.next_attempt_at = now + timedelta(seconds=delay)
            state = stored.state
            attempts = stored.attempts
        extra = {
            "delivery_id": row.id,
            "alert_id": row.alert_id,
            "account_id": row.account_id,
            "destination": row.destination,
            "attempts": attempts,
        }
        if error is None:
            log.info("alert delivered", extra=extra)
            metrics.DELIVERED.labels(**labels).inc()
            metrics.DELIVERY_LATENCY.labels(row.format).observe(
                max(0.0, (now - row.created_at).total_seconds())
            )
            metrics.EVENT_TO_DELIVERY.labels(row.format).observe(
                max(0.0, (now - row.event_time).total_seconds())
            )
            return
        metrics.FAILED.labels(**labels).inc()
        if state == DeliveryState.DEAD.value:
            metrics.DEAD.labels(**labels).inc()
            log.error("delivery dead-lettered: %s", error, extra=extra)
        else:
            log.warning("delivery failed, will retry: %s", error, extra=extra)
