"""Prometheus metrics of the streaming scorer and the trainer.

Naming follows Prometheus conventions (``_total`` counters, base units, no
account ids as labels: label cardinality must stay bounded whatever the number
of accounts). Hot-path code accumulates counts per batch and adds them once,
because each ``inc()`` takes a lock.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class ScorerMetrics:
    """One instance per process (prometheus collectors are registry singletons)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        p = "healthstream_scorer_"
        self.events = Counter(
            p + "events_processed_total",
            "Events applied to account state, by event type.",
            ["type"],
            registry=registry,
        )
        self.duplicates = Counter(
            p + "events_duplicate_total",
            "Events whose event_id was already applied (changed nothing).",
            registry=registry,
        )
        self.late = Counter(
            p + "events_late_total",
            "Events older than the allowed lateness behind the account watermark "
            "(dead-lettered with error_stage=late).",
            registry=registry,
        )
        self.align_wait = Counter(
            p + "alignment_wait_seconds_total",
            "Seconds partition indexes were held for a lagging event topic (event-time alignment).",
            registry=registry,
        )
        self.align_reordered = Counter(
            p + "alignment_reordered_total",
            "Records processed after a record fetched later than them (merged by event time).",
            registry=registry,
        )
        self.align_forced = Counter(
            p + "alignment_forced_total",
            "Holds for a lagging topic given up after scorer_max_hold_s (events may be late).",
            registry=registry,
        )
        self.latency = Histogram(
            p + "processing_latency_seconds",
            "Event time to scored (wall clock minus event occurred_at).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=registry,
        )
        self.lag = Gauge(
            p + "consumer_lag_messages",
            "Records behind the partition high watermark after the last batch.",
            ["topic", "partition"],
            registry=registry,
        )
        self.bands = Gauge(
            p + "accounts_by_band",
            "Accounts scored by this worker, by current band.",
            ["band"],
            registry=registry,
        )
        self.alerts = Counter(
            p + "alerts_total", "Risk alerts published, by reason.", ["reason"], registry=registry
        )
        self.health_updates = Counter(
            p + "health_updates_published_total",
            "Health updates published to account-health (meaningful changes only).",
            registry=registry,
        )
        self.examples = Counter(
            p + "training_examples_published_total",
            "Labelled training examples published to training-examples.",
            registry=registry,
        )
        self.dlq = Counter(
            p + "dlq_messages_total",
            "Messages sent to a dead-letter topic, by stage (decode, schema, processing).",
            ["stage"],
            registry=registry,
        )
        self.batch_size = Histogram(
            p + "batch_size_events",
            "Records processed per batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 4000, 8000),
            registry=registry,
        )
        self.sweep_accounts = Counter(
            p + "timer_ticks_total",
            "Accounts ticked by the event-time timer sweep.",
            registry=registry,
        )
        self.model_auc = Gauge(
            p + "model_rolling_auc",
            "Rolling ROC AUC of the churn model snapshot in use (NaN before any).",
            registry=registry,
        )
        self.model_labels = Gauge(
            p + "model_labels_seen",
            "Labels the churn model snapshot in use has learned from.",
            registry=registry,
        )
        self.model_snapshots = Counter(
            p + "model_snapshots_loaded_total",
            "Model snapshots loaded from model-snapshots.",
            registry=registry,
        )
        self.model_auc.set(float("nan"))
        self.blend_weight, self.blend_auc = blend_gauges(p, "snapshot in use", registry)


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        p = "healthstream_trainer_"
        self.examples = Counter(
            p + "examples_learned_total", "Training examples learned.", registry=registry
        )
        self.invalid = Counter(
            p + "examples_invalid_total",
            "Undecodable training examples skipped.",
            registry=registry,
        )
        self.snapshots = Counter(
            p + "snapshots_published_total", "Model snapshots published.", registry=registry
        )
        self.auc = Gauge(p + "model_rolling_auc", "Rolling ROC AUC.", registry=registry)
        self.labels = Gauge(p + "model_labels_seen", "Labels learned.", registry=registry)
        self.lag = Gauge(
            p + "consumer_lag_messages",
            "Records behind the high watermark, per assigned training-examples partition.",
            ["topic", "partition"],
            registry=registry,
        )
        self.auc.set(float("nan"))
        self.blend_weight, self.blend_auc = blend_gauges(p, "model being trained", registry)


BLEND_PARTS = ("scorecard", "model", "health")


def blend_gauges(prefix: str, which: str, registry: CollectorRegistry) -> tuple[Gauge, Gauge]:
    """The model's weight in the health score, and the recent-outcome AUCs that chose it."""
    weight = Gauge(
        prefix + "blend_model_weight",
        f"Weight of the churn model in the health score ({which}); 1 - it is the scorecard's.",
        registry=registry,
    )
    auc = Gauge(
        prefix + "blend_rolling_auc",
        f"Rolling ROC AUC on the recent labelled examples the blend weight was chosen on "
        f"({which}), by part: scorecard alone, model alone, the chosen mix (health).",
        ["part"],
        registry=registry,
    )
    weight.set(0.0)
    for part in BLEND_PARTS:
        auc.labels(part).set(float("nan"))
    return weight, auc


def export_blend(weight: Gauge, auc: Gauge, reason: dict[str, float | None]) -> None:
    """Set both from ``ChurnModel.blend_reason()`` (NaN for an AUC not yet defined)."""
    weight.set(reason["weight"] or 0.0)
    for part in BLEND_PARTS:
        value = reason[f"auc_{part}"]
        auc.labels(part).set(float("nan") if value is None else value)
