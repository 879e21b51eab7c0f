"""Ingest-only knobs on top of the shared :class:`healthstream.settings.Settings`.

Every limit here is a protection: the body and batch caps keep one request from
exhausting memory, the in-flight cap turns a slow broker into 503 backpressure
instead of an unbounded queue, and the dedupe window bounds memory per worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import Field, SecretStr, field_validator

from healthstream.settings import Settings
from services.ingest.validation import EventTimeWindow


class IngestSettings(Settings):
    """Read from ``HEALTHSTREAM_*`` variables, e.g. ``HEALTHSTREAM_MAX_BODY_BYTES``."""

    # Request limits (the body limit applies after gunzip as well as before).
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=10_000, ge=1)
    # JSON nesting deeper than this is refused before it is parsed (events nest 3-8 deep).
    max_json_depth: int = Field(default=64, ge=4, le=512)
    # A refused body (413) is read and discarded up to this many bytes, so the client
    # gets the JSON answer instead of a connection reset; past it the connection is cut.
    max_discard_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # gzip members per body: a legitimate client sends one (or a few concatenated).
    max_gzip_members: int = Field(default=64, ge=1)

    # Event time window, around this process's clock: backfills of the past are
    # normal, so the lower bound is a fixed epoch; the upper bound allows clock skew.
    event_time_min: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    event_time_max_future_seconds: float = Field(default=300.0, ge=0)

    # Account ownership (properties.csm on account events) from /v1/events: any key
    # with the ingest scope, or (when true) only keys with the admin scope.
    ownership_requires_admin: bool = False

    @field_validator("event_time_min")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        # A bare date or naive time in the environment means UTC, not the host's zone.
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def event_time_window(self) -> EventTimeWindow:
        return EventTimeWindow(
            self.event_time_min, timedelta(seconds=self.event_time_max_future_seconds)
        )

    # Dedupe: event ids remembered per worker for this long, at most this many.
    dedupe_window_seconds: float = Field(default=3600.0, ge=0)
    dedupe_max_entries: int = Field(default=1_000_000, ge=0)

    # Backpressure: events handed to the producer and not yet acknowledged.
    max_in_flight_events: int = Field(default=50_000, ge=1)
    # How long a produce request may wait for the broker before the batch fails (503).
    publish_timeout_seconds: float = Field(default=10.0, gt=0)
    # While the broker is known to be down, re-probe at most this often; answer 503 meanwhile.
    broker_probe_interval_seconds: float = Field(default=1.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # Largest message the producer will send; larger events go to the DLQ, truncated.
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Source adapters. Stripe signs every webhook; Segment and Zendesk signatures are
    # optional extras on top of the API key (verified only when a secret is configured).
    stripe_webhook_secret: SecretStr | None = None
    stripe_signature_tolerance_seconds: int = Field(default=300, ge=1)
    segment_shared_secret: SecretStr | None = None
    zendesk_webhook_secret: SecretStr | None = None
    zendesk_signature_tolerance_seconds: int = Field(default=300, ge=1)
