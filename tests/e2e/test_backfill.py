"""A history POSTed in one request scores as if it had arrived live, in event-time order,
and its alerts are stored as history (``backfilled``), not delivered as news.

Ingest splits the request over five topics; the scorer fetches them in whatever order
the broker returns them. Before the scorer merged its topics by event time, this
history lost 518 of its events as "late" when billing was read first, and raised two
or three of its four alerts depending on the run.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from healthstream.stack import ServiceStack
from services.scorer.core import parse_event
from tests.e2e.backfill_story import story
from tests.integration.scorer.histories import Reference, time_ordered


def _reference(events: list[dict]) -> tuple[list[tuple[str, float]], float]:
    """(reason, occurred_at) of every alert, and the last published score, in-process."""
    ref = Reference()
    alerts: list[tuple[str, float]] = []
    last_score = float("nan")
    for raw in time_ordered(events):
        event = parse_event(raw)
        out = ref.engine.apply(ref.states.get(event.account_id), event)
        ref.states[event.account_id] = out.state
        alerts += [(a.reason, a.occurred_at) for a in out.alerts]
        if out.health is not None:
            last_score = out.health.score
    return alerts, last_score


def test_a_backfilled_history_yields_the_alerts_of_time_ordered_scoring(
    stack: ServiceStack, e2e_headers: dict
) -> None:
    account = f"backfill-{uuid.uuid4().hex[:8]}"
    events = story(account, datetime.now(UTC))
    expected, expected_score = _reference(events)
    assert [reason for reason, _ in expected] == [
        "usage_decline",
        "ticket_past_sla",
        "nps_detractor",
        "payment_failed",
    ]
    last_ts = max(parse_event(e).ts for e in events)

    response = httpx.post(
        f"{stack.url('ingest')}/v1/events", json=events, headers=e2e_headers, timeout=30
    )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)

    alerts_url = f"{stack.url('alerts')}/v1"
    deadline = time.monotonic() + 90
    health = None
    while time.monotonic() < deadline:
        got = httpx.get(f"{alerts_url}/accounts/{account}", headers=e2e_headers)
        if got.status_code == 200:
            health = got.json()["health"]
            if health and datetime.fromisoformat(health["as_of"]).timestamp() >= last_ts:
                break
        time.sleep(0.25)
    assert health is not None, f"no health for {account} within 90 s"
    assert datetime.fromisoformat(health["as_of"]).timestamp() == last_ts
    assert health["score"] == expected_score

    def event_driven() -> list[tuple[str, float]]:
        listing = httpx.get(
            f"{alerts_url}/alerts", params={"account_id": account}, headers=e2e_headers
        )
        assert listing.status_code == 200, listing.text
        items = listing.json()["items"]
        # Days old when they arrived: stored and listed, marked, never delivered.
        assert all(a["backfilled"] for a in items), items
        found = [(a["reason"], datetime.fromisoformat(a["occurred_at"]).timestamp()) for a in items]
        # Timers (the sweep) may add alerts after the history's end; those are not the
        # events' doing and the in-process replay has no clock to raise them.
        return sorted((a for a in found if a[1] <= last_ts), key=lambda a: a[1])

    deadline = time.monotonic() + 30
    stored = event_driven()
    while len(stored) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = event_driven()
    assert stored == sorted(expected, key=lambda a: a[1])
