"""Periodic state changes nobody triggers by hand: snoozes running out, escalations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from services.alerts import metrics
from services.alerts.db import utcnow
from services.alerts.models import Alert
from services.alerts.routing import RoutingConfig
from services.alerts.settings import AlertsSettings
from services.alerts.store import escalate_overdue, to_alert, wake_snoozed

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[Any],
        routing: RoutingConfig,
        on_changed: Callable[[list[Alert], bool], None],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.routing = routing
        self.on_changed = on_changed

    @property
    def escalate_after(self) -> timedelta:
        seconds = self.routing.escalation.after_seconds or self.settings.alerts_escalation_after
        return timedelta(seconds=seconds)

    async def run(self) -> None:
        """Sweep every interval; a failing sweep raises, and the supervisor restarts it."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.settings.alerts_sweep_interval)

    async def run_once(self) -> None:
        now = utcnow()
        async with self.sessions() as session, session.begin():
            woken = await wake_snoozed(session, now)
            escalated = await escalate_overdue(
                session, now, self.escalate_after, self.routing, self.settings.public_url
            )
            changed = [to_alert(row) for row in (*woken, *escalated)]
        if escalated:
            metrics.ESCALATIONS.inc(len(escalated))
            log.info("escalated %d critical alerts", len(escalated))
        if changed:
            self.on_changed(changed, bool(escalated))
