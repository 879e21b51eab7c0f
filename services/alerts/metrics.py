"""Prometheus metrics of the alerts service (module-level: one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)

RECEIVED = Counter(
    "healthstream_alerts_received_total",
    "Risk alerts read from Kafka (with duplicates)",
    ["reason"],
)
STORED = Counter("healthstream_alerts_stored_total", "New alerts stored", ["reason"])
DUPLICATES = Counter(
    "healthstream_alerts_duplicates_total", "Redelivered alerts ignored by dedupe", ["reason"]
)
AUTO_RESOLVED = Counter(
    "healthstream_alerts_auto_resolved_total",
    "Alerts resolved by the service because a health update showed their condition over",
    ["reason"],
)
INVALID = Counter(
    "healthstream_alerts_invalid_messages_total", "Messages that failed validation", ["topic"]
)
DELIVERED = Counter(
    "healthstream_alerts_delivered_total",
    "Webhook deliveries that succeeded",
    ["reason", "channel"],
)
FAILED = Counter(
    "healthstream_alerts_failed_total",
    "Webhook delivery attempts that failed",
    ["reason", "channel"],
)
DEAD = Counter(
    "healthstream_alerts_dead_letters_total",
    "Deliveries given up after the maximum attempts",
    ["reason", "channel"],
)
DELIVERY_LATENCY = Histogram(
    "healthstream_alerts_delivery_latency_seconds",
    "Stored -> delivered",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
EVENT_TO_DELIVERY = Histogram(
    "healthstream_alerts_event_to_delivery_seconds",
    "Event time of the alert -> delivered",
    ["channel"],
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "healthstream_alerts_consumer_lag_messages",
    "Records behind the high watermark, per assigned topic-partition",
    ["topic", "partition"],
)
HEALTH_UPDATES = Counter(
    "healthstream_alerts_health_updates_total",
    "account-health updates read: stored, or superseded by a newer one in the same fetch",
    ["result"],
)
STORE_SECONDS = Histogram(
    "healthstream_alerts_store_batch_seconds",
    "Storing one consumer fetch (transaction, DLQ, offset commit)",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_LAG = Histogram(
    "healthstream_alerts_store_lag_seconds",
    "Risk alert appended to Kafka (record timestamp) -> stored and streamed",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
OUTBOX_DEPTH = Gauge("healthstream_alerts_outbox_depth", "Deliveries pending")
OUTBOX_OLDEST_AGE = Gauge(
    "healthstream_alerts_outbox_oldest_age_seconds", "Age of the oldest undelivered delivery"
)
ESCALATIONS = Counter("healthstream_alerts_escalations_total", "Critical alerts escalated")
STREAM_CLIENTS = Gauge("healthstream_alerts_stream_clients", "Connected SSE clients")
