"""Structured JSON logs with correlation ids, read from the real services.

One ``payment.failed`` event went through the running stack (see live_metrics):
ingest published it, the scorer raised a risk alert, the alerts service
delivered it to one receiver and gave up on a broken one. Every line every
service wrote must be one JSON object with the fields log agents index, and the
lines about that event carry the same event, account and alert ids, so one
query follows it from the scorer to the notification.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.deploy.live_metrics import (
    API_KEY,
    SERVICES,
    Scrape,
    Trace,
    parse_log_lines,
)

pytestmark = pytest.mark.slow

REQUIRED_FIELDS = {"ts", "level", "service", "logger", "msg"}


def _entries(scraped: Scrape) -> dict[str, list[dict[str, Any]]]:
    return {service: parse_log_lines(lines) for service, lines in scraped.logs.items()}


def _trace(scraped: Scrape) -> Trace:
    assert scraped.trace is not None, f"not every service runs: {scraped.unavailable}"
    return scraped.trace


def test_every_service_writes_one_json_object_per_line(scraped: Scrape) -> None:
    assert set(scraped.logs) == set(SERVICES) - set(scraped.unavailable)
    logged = _entries(scraped)
    # A quiet trainer may write nothing in a short run; the pipeline services do.
    assert logged["scorer"] and logged["alerts"], {s: len(e) for s, e in logged.items()}
    for service, entries in logged.items():
        for entry in entries:
            assert set(entry) >= REQUIRED_FIELDS, (service, entry)
            assert entry["service"] == service, entry
            assert entry["level"] in {"debug", "info", "warning", "error", "critical"}, entry


def test_the_traced_alert_was_delivered_and_given_up(scraped: Scrape) -> None:
    """The scenario really happened, or the id checks below would prove nothing."""
    received = _trace(scraped).received
    assert "/ok" in received, received
    assert received.count("/broken") >= 2, received


def test_one_event_is_followed_across_services_by_its_ids(scraped: Scrape) -> None:
    trace = _trace(scraped)
    entries = _entries(scraped)

    raised = [
        e for e in entries["scorer"] if e.get("event_id") == trace.event_id and e.get("alert_id")
    ]
    assert raised, "the scorer logged no alert for the traced event"
    assert {e["account_id"] for e in raised} == {trace.account_id}
    alert_ids = {e["alert_id"] for e in raised}

    delivery = [e for e in entries["alerts"] if e.get("alert_id") in alert_ids]
    assert {e["account_id"] for e in delivery} == {trace.account_id}
    by_level: dict[str, set[str]] = {}
    for entry in delivery:
        by_level.setdefault(entry["level"], set()).add(entry.get("destination", ""))
    assert any(e["msg"] == "alert stored" for e in delivery), delivery
    assert "crm-ok" in by_level.get("info", set()), delivery  # delivered
    assert "crm-broken" in by_level.get("warning", set()), delivery  # failed, will retry
    assert "crm-broken" in by_level.get("error", set()), delivery  # given up


def test_no_log_line_leaks_the_api_key(scraped: Scrape) -> None:
    for service, lines in scraped.logs.items():
        for line in lines:
            assert API_KEY not in line, (service, line[:300])
