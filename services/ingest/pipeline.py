"""Dedupe, publish and count: the part every route (API and adapters) shares."""

from __future__ import annotations

from collections import Counter

from schemas import Event
from services.ingest.dedupe import DedupeWindow
from services.ingest.errors import ApiError, IngestAccepted
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import Backpressure, BrokerUnavailable, Publisher
from services.ingest.settings import IngestSettings

#: ``source`` is client-chosen text; as a metric label it must stay a small, fixed set.
KNOWN_SOURCES = frozenset({"api", "segment", "zendesk", "stripe", "replay", "simulator", "sdk"})


def _source_label(source: str | None) -> str:
    if source is None:
        return "api"
    return source if source in KNOWN_SOURCES else "other"


class IngestPipeline:
    def __init__(
        self,
        settings: IngestSettings,
        publisher: Publisher,
        dedupe: DedupeWindow,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.dedupe = dedupe
        self.metrics = metrics

    async def submit(self, events: list[Event], ignored: int = 0) -> IngestAccepted:
        """Publish the events not seen within the window; answer only after broker acks."""
        flags = self.dedupe.reserve(event.event_id for event in events)
        fresh = [event for event, is_new in zip(events, flags, strict=True) if is_new]
        duplicates = len(events) - len(fresh)
        try:
            result = await self.publisher.publish(fresh)
        except BrokerUnavailable as exc:
            done = {e.event_id for e in exc.acked} | {e.event_id for e in exc.dead_lettered}
            # What the broker did take is remembered, so the client's retry is not doubled.
            self.dedupe.commit(done)
            self.dedupe.release(e.event_id for e in fresh if e.event_id not in done)
            self._count(exc.acked, exc.dead_lettered, duplicates)
            reason = "too_many_in_flight" if isinstance(exc, Backpressure) else "unavailable"
            self.metrics.events_rejected.labels(reason).inc(len(fresh) - len(done))
            raise ApiError(
                503,
                "backpressure" if isinstance(exc, Backpressure) else "broker_unavailable",
                f"{exc.reason}; nothing unacknowledged was kept, retry the request",
                headers={"Retry-After": str(self.settings.retry_after_seconds)},
            ) from None
        except BaseException:
            self.dedupe.release(e.event_id for e in fresh)
            raise
        self.dedupe.commit(e.event_id for e in [*result.acked, *result.dead_lettered])
        self._count(result.acked, result.dead_lettered, duplicates)
        self.metrics.batch_size.observe(len(events))
        return IngestAccepted(
            accepted=len(result.acked),
            duplicates=duplicates,
            dead_lettered=len(result.dead_lettered),
            ignored=ignored,
        )

    def _count(self, acked: list[Event], dead: list[Event], duplicates: int) -> None:
        for source, n in Counter(_source_label(e.source) for e in acked).items():
            self.metrics.events_accepted.labels(source).inc(n)
        if dead:
            self.metrics.events_rejected.labels("dead_lettered").inc(len(dead))
        if duplicates:
            self.metrics.events_rejected.labels("duplicate").inc(duplicates)
