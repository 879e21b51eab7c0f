"""Prometheus metrics of the ingest service (prefix ``healthstream_ingest_``).

Each app gets its own registry, so several apps (tests, benchmarks) can live in
one process without "duplicated timeseries" errors; ``/metrics`` exports it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "healthstream_ingest_requests_total",
            "HTTP requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "healthstream_ingest_events_accepted_total",
            "Events acknowledged by the broker on their topic, by source.",
            ["source"],
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "healthstream_ingest_events_rejected_total",
            "Events not published to their topic, by reason "
            "(invalid, duplicate, dead_lettered, unavailable, too_large).",
            ["reason"],
            registry=self.registry,
        )
        self.publish_latency = Histogram(
            "healthstream_ingest_publish_latency_seconds",
            "Time from handing a batch to the producer until every message is acknowledged.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "healthstream_ingest_batch_size_events",
            "Events per accepted request.",
            buckets=(1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "healthstream_ingest_in_flight_events",
            "Events handed to the producer and not yet acknowledged.",
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "healthstream_ingest_signature_failures_total",
            "Webhook requests rejected for a forged, expired or missing signature.",
            ["source"],
            registry=self.registry,
        )
        self.ownership_ignored = Counter(
            "healthstream_ingest_ownership_ignored_total",
            "Events whose properties.csm was removed because that source may not state "
            "account ownership (vendor webhooks, non-account events), by route source.",
            ["source"],
            registry=self.registry,
        )
