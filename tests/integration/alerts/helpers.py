"""Building blocks of the alerts integration tests: alerts, publishing, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from healthstream.kafka import make_producer
from healthstream.settings import Settings

BASE_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
#: Alert fixtures are dated from BASE_TIME, weeks before the test runs: the services
#: under test count them as live (delivered), not as backfilled history.
FIXTURES_ARE_LIVE_HOURS = 24 * 365 * 10


def risk_alert(
    account_id: str,
    n: int = 0,
    *,
    reason: str = "entered_red",
    severity: str = "critical",
    score: float = 30.0,
    csm: str | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": f"{account_id}-{reason}-{n}",
        "dedupe_key": f"{account_id}:{reason}:{n}",
        "account_id": account_id,
        "reason": reason,
        "severity": severity,
        "score": score,
        "previous_score": min(100.0, score + 25),
        "drivers": [
            {
                "feature": "usage_trend",
                "component": "usage",
                "contribution": -18.5,
                "sentence": "usage down 62% vs last 4 weeks",
            }
        ],
        "occurred_at": (BASE_TIME + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        "csm": csm,
        "message": f"{account_id} needs attention ({reason})",
    }


def health_update(account_id: str, score: float, minutes: int = 0) -> dict[str, Any]:
    band = "green" if score > 75 else "yellow" if score > 50 else "red"
    return {
        "account_id": account_id,
        "as_of": (BASE_TIME + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "score": score,
        "band": band,
        "churn_probability": round(1 - score / 100, 3),
        "components": {
            "usage": score,
            "engagement": score,
            "support": 80.0,
            "billing": 90.0,
            "sentiment": 70.0,
            "lifecycle": 60.0,
        },
        "drivers": [
            {
                "feature": "days_inactive",
                "component": "engagement",
                "contribution": -12.0,
                "sentence": "no logins for 9 days",
            }
        ],
        "model_version": "scorecard-test",
    }


def account_event(account_id: str, n: int = 0, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": f"acct-{account_id}-{n}",
        "account_id": account_id,
        "type": "account",
        "name": "account.updated",
        "occurred_at": BASE_TIME.isoformat().replace("+00:00", "Z"),
        "properties": properties,
    }


async def publish(
    settings: Settings, topic: str, values: list[dict[str, Any]] | list[bytes]
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for value in values:
            if isinstance(value, bytes):
                await producer.send_and_wait(topic, value=value, key=b"broken")
            else:
                key = str(value["account_id"]).encode()
                await producer.send_and_wait(topic, value=orjson.dumps(value), key=key)
    finally:
        await producer.stop()


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> Any:
    """Poll until ``check`` returns something truthy (a bound, not a speed assertion)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def parse_metrics(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` text as {(sample name, labels): value}, for before/after deltas."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def metric(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when it was never observed)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
