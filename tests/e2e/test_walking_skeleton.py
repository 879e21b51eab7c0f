"""An event posted over HTTP comes out as a stored, queryable risk alert."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from healthstream.stack import ServiceStack


def test_payment_failed_event_becomes_an_alert(stack: ServiceStack, e2e_headers: dict) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    event = {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "account_id": account,
        "type": "billing",
        "name": "payment.failed",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"amount": 499.0, "currency": "USD"},
    }
    response = httpx.post(f"{stack.url('ingest')}/v1/events", json=event, headers=e2e_headers)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1

    deadline = time.monotonic() + 60
    alerts: list[dict] = []
    while time.monotonic() < deadline and not alerts:
        listing = httpx.get(
            f"{stack.url('alerts')}/v1/alerts", params={"account_id": account}, headers=e2e_headers
        )
        assert listing.status_code == 200, listing.text
        alerts = listing.json()["items"]
        if not alerts:
            time.sleep(0.25)
    assert alerts, f"no alert for {account} within 60 s"
    assert {a["reason"] for a in alerts} >= {"payment_failed"}
    assert all(a["account_id"] == account for a in alerts)


def test_alerts_api_requires_a_key(stack: ServiceStack) -> None:
    assert httpx.get(f"{stack.url('alerts')}/v1/alerts").status_code == 401
    assert httpx.post(f"{stack.url('ingest')}/v1/events", json={}).status_code == 401
    for service in ("ingest", "alerts", "scorer"):
        assert httpx.get(f"{stack.url(service)}/healthz").status_code == 200
        metrics = httpx.get(f"{stack.url(service)}/metrics")
        assert metrics.status_code == 200 and "healthstream_" in metrics.text
