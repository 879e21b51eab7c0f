"""Alerts resolve themselves when the account's health shows their condition over.

Real service, real broker, SQLite and PostgreSQL: the alerts and the health
updates arrive on their topics, as the scorer publishes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.integration.alerts.conftest import ADMIN, Running
from tests.integration.alerts.helpers import (
    BASE_TIME,
    account_event,
    eventually,
    publish,
    risk_alert,
)


def _health(
    account_id: str,
    score: float,
    minutes: int,
    *,
    band: str,
    churn: float = 0.5,
    drivers: list[dict[str, Any]] | None = None,
    **components: float,
) -> dict[str, Any]:
    parts = {"usage": 70.0, "engagement": 70.0, "support": 70.0, "billing": 70.0}
    parts |= {"sentiment": 70.0, "lifecycle": 70.0}
    parts.update(components)
    return {
        "account_id": account_id,
        "as_of": (BASE_TIME + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "score": score,
        "band": band,
        "churn_probability": churn,
        "components": parts,
        "drivers": drivers or [],
        "model_version": "scorecard-test",
    }


async def _status(service: Running, alert_id: str) -> str | None:
    """The alert's status, None while it is not stored yet."""
    async with service.client(ADMIN) as client:
        response = await client.get(f"/v1/alerts/{alert_id}")
    return None if response.status_code == 404 else str(response.json()["status"])


async def _wait_statuses(service: Running, expected: dict[str, str], what: str) -> None:
    async def reached() -> bool:
        return all([await _status(service, a) == s for a, s in expected.items()])

    await eventually(reached, what=what)


def _auto_resolved(metrics: str) -> dict[str, float]:
    prefix = 'healthstream_alerts_auto_resolved_total{reason="'
    counts = {}
    for line in metrics.splitlines():
        if line.startswith(prefix):
            labels, value = line.rsplit(" ", 1)
            counts[labels[len(prefix) : -2]] = float(value)
    return counts


async def test_alerts_resolve_when_health_shows_the_condition_over(service: Running) -> None:
    settings = service.settings
    # The registry is per process (shared by the tests of this run): count the difference.
    async with service.client(ADMIN) as client:
        before = _auto_resolved((await client.get("/metrics")).text)
    topics = settings.topics
    await publish(
        settings,
        topics.account_health,
        [
            _health("alpha", 35.0, 0, band="red", support=30.0),
            _health("bravo", 55.0, 0, band="yellow", billing=20.0),
        ],
    )
    alerts = [
        risk_alert("alpha", 1, score=35.0),
        risk_alert("alpha", 2, reason="ticket_past_sla", severity="warning", score=35.0),
        risk_alert("alpha", 3, reason="ticket_past_sla", severity="warning", score=35.0),
        risk_alert("bravo", 4, reason="payment_failed", severity="critical", score=55.0),
        risk_alert("bravo", 5, reason="nps_detractor", severity="warning", score=55.0),
    ]
    await publish(settings, topics.risk_alerts, alerts)
    ids = [a["alert_id"] for a in alerts]
    await _wait_statuses(service, dict.fromkeys(ids, "open"), "alerts stored open")

    # alpha is green again but its tickets are still open: only entered_red goes.
    await publish(
        settings, topics.account_health, [_health("alpha", 82.0, 10, band="green", support=60.0)]
    )
    await _wait_statuses(
        service,
        {ids[0]: "resolved", ids[1]: "open", ids[2]: "open"},
        "entered_red resolved by the green band",
    )
    # Support back to 100 (tickets resolved): both ticket alerts go; bravo is untouched.
    await publish(
        settings, topics.account_health, [_health("alpha", 88.0, 20, band="green", support=100.0)]
    )
    await _wait_statuses(
        service, {ids[1]: "resolved", ids[2]: "resolved"}, "ticket alerts resolved"
    )
    # bravo pays: billing in good standing resolves payment_failed; the NPS answer stays.
    await publish(
        settings, topics.account_health, [_health("bravo", 70.0, 30, band="yellow", billing=100.0)]
    )
    await _wait_statuses(service, {ids[3]: "resolved"}, "payment_failed resolved")
    assert await _status(service, ids[4]) == "open"

    async with service.client(ADMIN) as client:
        audit = (await client.get(f"/v1/alerts/{ids[0]}/audit")).json()["items"]
        assert [(e["action"], e["actor"]) for e in audit] == [
            ("created", "system"),
            ("resolved", "system"),
        ]
        details = audit[1]["details"]
        assert details["cause"] == "health back to green (82)"
        assert details["auto"] is True
        assert details["band"] == "green" and details["score"] == 82.0
        assert details["as_of"].startswith((BASE_TIME + timedelta(minutes=10)).date().isoformat())
        payment = (await client.get(f"/v1/alerts/{ids[3]}/audit")).json()["items"]
        assert payment[-1]["details"]["cause"].startswith("billing in good standing")
        # Resolved alerts leave the default (at-risk) view: alpha has none left.
        at_risk = (await client.get("/v1/accounts", params={"at_risk": "true"})).json()["items"]
        assert [a["account_id"] for a in at_risk] == ["bravo"]
        metrics = (await client.get("/metrics")).text
    after = _auto_resolved(metrics)
    added = {reason: after[reason] - before.get(reason, 0.0) for reason in after}
    assert {k: v for k, v in added.items() if v} == {
        "entered_red": 1.0,
        "ticket_past_sla": 2.0,
        "payment_failed": 1.0,
    }


async def test_late_health_never_resolves_and_cleared_health_resolves_a_late_alert(
    service: Running,
) -> None:
    settings = service.settings
    topics = settings.topics
    # charlie: the alert is newer than any green health: it must stay open.
    await publish(settings, topics.account_health, [_health("charlie", 30.0, 0, band="red")])
    await publish(settings, topics.risk_alerts, [risk_alert("charlie", 40, score=30.0)])
    await _wait_statuses(service, {"charlie-entered_red-40": "open"}, "charlie's alert")
    await publish(settings, topics.account_health, [_health("charlie", 85.0, 20, band="green")])
    # A later red update proves the green one above was processed (same partition, in order).
    await publish(settings, topics.account_health, [_health("charlie", 31.0, 45, band="red")])

    async def red_again() -> bool:
        async with service.client(ADMIN) as client:
            health = (await client.get("/v1/accounts/charlie")).json()["health"]
        return bool(health) and health["score"] == 31.0

    await eventually(red_again, what="charlie's newest health")
    assert await _status(service, "charlie-entered_red-40") == "open"
    # A green update older than the current (red) health changes nothing either; the
    # newer red one after it shows it was read.
    await publish(
        settings,
        topics.account_health,
        [_health("charlie", 90.0, 44, band="green"), _health("charlie", 32.0, 46, band="red")],
    )

    async def read_past_the_late_one() -> bool:
        async with service.client(ADMIN) as client:
            health = (await client.get("/v1/accounts/charlie")).json()["health"]
        return bool(health) and health["score"] == 32.0

    await eventually(read_past_the_late_one, what="charlie's update after the late one")
    assert await _status(service, "charlie-entered_red-40") == "open"

    # delta: green health is stored first, the alert it clears arrives afterwards.
    await publish(settings, topics.account_health, [_health("delta", 90.0, 60, band="green")])

    async def delta_stored() -> bool:
        async with service.client(ADMIN) as client:
            return (await client.get("/v1/accounts/delta")).status_code == 200

    await eventually(delta_stored, what="delta's health")
    await publish(settings, topics.risk_alerts, [risk_alert("delta", 50, score=40.0)])
    await _wait_statuses(service, {"delta-entered_red-50": "resolved"}, "late alert resolved")
    assert await _status(service, "charlie-entered_red-40") == "open"


async def test_severity_is_capped_by_band_and_accounts_sort_by_risk(service: Running) -> None:
    settings = service.settings
    topics = settings.topics
    await publish(
        settings,
        topics.account,
        [
            account_event("big", mrr=9000.0, renewal_date="2027-03-01"),
            account_event("small", mrr=500.0, renewal_date="2027-01-15"),
            account_event("mid", mrr=3000.0),
        ],
    )
    await publish(
        settings,
        topics.account_health,
        [
            _health("big", 60.0, 0, band="yellow", churn=0.5),  # 4500 at risk
            _health("small", 30.0, 0, band="red", churn=0.9),  # 450 at risk
            _health("mid", 45.0, 0, band="red", churn=0.6),  # 1800 at risk
        ],
    )
    await publish(
        settings,
        topics.risk_alerts,
        [
            risk_alert("big", 1, reason="payment_failed", severity="critical", score=60.0),
            risk_alert("small", 2, score=30.0),
            risk_alert("mid", 3, reason="score_drop", severity="critical", score=92.0),
        ],
    )

    async def ready() -> list[dict[str, Any]] | None:
        async with service.client(ADMIN) as client:
            items = (await client.get("/v1/accounts", params={"at_risk": "true"})).json()["items"]
        full = all(i["health"] and i["mrr"] is not None for i in items)
        return items if len(items) == 3 and full else None

    items = await eventually(ready, what="three accounts with health, MRR and an alert")
    # Risk: worst band first, then lowest score.
    assert [a["account_id"] for a in items] == ["small", "mid", "big"]
    by_id = {a["account_id"]: a for a in items}
    assert by_id["big"]["mrr_at_risk"] == 4500.0
    assert by_id["big"]["renewal_date"] == "2027-03-01"
    # critical on a yellow account is a warning; on a score of 92 (green) an info.
    big_alert = by_id["big"]["alerts"][0]
    assert (big_alert["severity"], big_alert["rule_severity"]) == ("warning", "critical")
    mid_alert = by_id["mid"]["alerts"][0]
    assert (mid_alert["severity"], mid_alert["rule_severity"]) == ("info", "critical")
    small_alert = by_id["small"]["alerts"][0]
    assert (small_alert["severity"], small_alert["rule_severity"]) == ("critical", "critical")

    async with service.client(ADMIN) as client:

        async def order(sort: str) -> list[str]:
            response = await client.get("/v1/accounts", params={"at_risk": "true", "sort": sort})
            assert response.status_code == 200, response.text
            return [a["account_id"] for a in response.json()["items"]]

        assert await order("mrr_at_risk") == ["big", "mid", "small"]
        assert await order("score") == ["small", "mid", "big"]
        assert await order("renewal") == ["small", "big", "mid"]  # no date last
        assert await order("last_change") == ["big", "mid", "small"]  # same time: by id
        bad = await client.get("/v1/accounts", params={"sort": "nope"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "sort"]
