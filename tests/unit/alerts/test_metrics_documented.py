"""Every metric the alerts service exports is documented in docs/alerts.md, and
every metric documented there exists: SREs build dashboards from that table."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from services.alerts import metrics

DOC = Path(__file__).resolve().parents[3] / "docs" / "alerts.md"


def _exported() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                suffix = "_total" if family.type == "counter" else ""
                names.add(family.name + suffix)
    return names


def _documented() -> set[str]:
    section = DOC.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(healthstream_alerts_[a-z_]+)` \|", section, re.MULTILINE))


def test_every_exported_metric_is_documented_and_vice_versa() -> None:
    exported = _exported()
    # The list: received/stored/delivered/failed, latency, outbox depth and age.
    for required in (
        "healthstream_alerts_received_total",
        "healthstream_alerts_stored_total",
        "healthstream_alerts_delivered_total",
        "healthstream_alerts_failed_total",
        "healthstream_alerts_delivery_latency_seconds",
        "healthstream_alerts_outbox_depth",
        "healthstream_alerts_outbox_oldest_age_seconds",
    ):
        assert required in exported, required
    assert _documented() == exported
