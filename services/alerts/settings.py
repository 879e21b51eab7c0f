"""Knobs only the alerts service needs, on top of the shared :class:`Settings`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from healthstream.settings import Settings
from services.alerts.conditions import Bands


class AlertsSettings(Settings):
    """Alerts-service settings (``HEALTHSTREAM_ALERTS_*`` and friends).

    Delays are in seconds so tests can shrink them without special cases.
    """

    alerts_consumer_group: str = "healthstream-alerts"
    #: How long the broker may hold a fetch of risk-alerts / account-events when there is
    #: no data. Short, because some brokers (the embedded one) answer only when it ends.
    alerts_fetch_max_wait_ms: int = Field(default=20, ge=1)
    #: Group of the account-health reader; None = ``<alerts_consumer_group>-health``.
    alerts_health_consumer_group: str | None = None
    #: Health updates are gathered this long, then the latest per account is written in bulk.
    alerts_health_flush_interval: float = Field(default=1.0, ge=0)
    #: ... or until this many were read, whichever comes first.
    alerts_health_batch: int = Field(default=5000, ge=1)
    #: Routing and webhooks (TOML, see docs/alerts.md); None = everything to the default owner.
    alerts_routing_path: Path | None = None
    #: Base of the "open in healthstream" link in notifications; None = http://host:alerts_port.
    alerts_public_url: str | None = None
    #: Fallback HMAC secret for JSON webhooks that do not set their own.
    alerts_webhook_secret: str = ""
    alerts_delivery_max_attempts: int = Field(default=8, ge=1)
    alerts_delivery_backoff_base: float = Field(default=1.0, gt=0)
    alerts_delivery_backoff_max: float = Field(default=300.0, gt=0)
    alerts_delivery_timeout: float = Field(default=10.0, gt=0)
    alerts_outbox_poll_interval: float = Field(default=0.5, gt=0)
    alerts_outbox_batch: int = Field(default=100, ge=1)
    #: Critical alerts still ``open`` after this long are escalated (None in TOML overrides).
    alerts_escalation_after: float = Field(default=1800.0, gt=0)
    alerts_sweep_interval: float = Field(default=5.0, gt=0)
    #: An alert whose event time is older than this when it arrives was raised by a
    #: backfill: stored and listed (``backfilled``), never delivered or escalated.
    alerts_backfill_after_hours: float = Field(default=24.0, gt=0)
    alerts_history_points: int = Field(default=60, ge=1)
    #: One history point per account and this much event time (the newest score in it).
    alerts_history_interval: float = Field(default=3600.0, gt=0)
    #: Serve the CSM page from this directory; None = services/alerts/web.
    alerts_web_dir: Path | None = None
    alerts_stream_keepalive: float = Field(default=15.0, gt=0)
    #: Band thresholds used to cap severities (keep equal to the scorecard's ``[bands]``).
    alerts_band_red_below: float = Field(default=50.0, ge=0, le=100)
    alerts_band_green_from: float = Field(default=75.0, ge=0, le=100)
    #: Largest request body the API reads (bytes); bigger ones get a 413 before parsing.
    alerts_max_body_bytes: int = Field(default=65536, ge=1024)

    @property
    def bands(self) -> Bands:
        return Bands(self.alerts_band_red_below, self.alerts_band_green_from)

    @property
    def health_consumer_group(self) -> str:
        return self.alerts_health_consumer_group or f"{self.alerts_consumer_group}-health"

    @property
    def public_url(self) -> str:
        return self.alerts_public_url or f"http://{self.host}:{self.alerts_port}"

    @property
    def backfill_after(self) -> timedelta:
        return timedelta(hours=self.alerts_backfill_after_hours)
