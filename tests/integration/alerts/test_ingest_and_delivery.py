"""Kafka -> store -> webhooks: idempotency, routing, payloads, order under receiver outage."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tests.integration.alerts.conftest import Running
from tests.integration.alerts.helpers import (
    account_event,
    eventually,
    health_update,
    metric,
    parse_metrics,
    publish,
    risk_alert,
)
from tests.integration.alerts.receiver import Recorder


async def _alert_ids(service: Running, **params: str) -> list[str]:
    async with service.client() as client:
        response = await client.get("/v1/alerts", params={"limit": 500, **params})
        response.raise_for_status()
        return [item["alert_id"] for item in response.json()["items"]]


async def test_duplicate_alerts_make_one_row_and_one_delivery(
    service: Running, recorder: Recorder
) -> None:
    topic = service.settings.topics.risk_alerts
    alert = risk_alert("acme", 1)
    # Same alert three times, plus a different id with the same dedupe key (a replay
    # that re-minted the id): all one alert.
    same_key = {**alert, "alert_id": "acme-entered_red-1-replayed"}
    await publish(service.settings, topic, [alert, alert, same_key])
    await publish(service.settings, topic, [alert])
    sentinel = risk_alert("zeta", 9)
    await publish(service.settings, topic, [sentinel])

    await eventually(lambda: len(recorder.snapshot("/json")) >= 2, what="deliveries of both alerts")
    assert sorted(await _alert_ids(service)) == ["acme-entered_red-1", "zeta-entered_red-9"]
    # Let the outbox worker run more passes: a duplicate delivery would show up now.
    await asyncio.sleep(1.0)
    delivered = [r.body["alert"]["alert_id"] for r in recorder.snapshot("/json")]
    assert sorted(delivered) == ["acme-entered_red-1", "zeta-entered_red-9"]
    assert all(r.signature_ok for r in recorder.snapshot("/json"))

    async with service.client() as client:
        audit = (await client.get("/v1/alerts/acme-entered_red-1/audit")).json()["items"]
    assert [entry["action"] for entry in audit] == ["created"]

    metrics = await _metrics(service)
    assert 'healthstream_alerts_duplicates_total{reason="entered_red"}' in metrics


async def _metrics(service: Running) -> str:
    async with service.client(None) as client:
        response = await client.get("/metrics")
        response.raise_for_status()
        return response.text


async def test_routing_from_account_events_and_config(service: Running, recorder: Recorder) -> None:
    settings = service.settings
    await publish(
        settings,
        settings.topics.account,
        [
            account_event("owned", csm="dave@example.com", plan="starter"),
            account_event("big", segment="enterprise", mrr=90000),
            account_event("pro", plan="pro", mrr=1500),
        ],
    )
    await publish(settings, settings.topics.account_health, [health_update("big", 42.0)])

    async def accounts_known() -> bool:
        async with service.client() as client:
            items = (await client.get("/v1/accounts")).json()["items"]
        return {item["account_id"] for item in items} == {"owned", "big", "pro"}

    # Topics are consumed independently: let the account facts land first.
    await eventually(accounts_known, what="account events stored")
    await publish(
        settings,
        settings.topics.risk_alerts,
        [
            risk_alert("owned", 1),
            risk_alert("big", 1),
            risk_alert("pro", 1, severity="warning", reason="usage_decline"),
            risk_alert("nobody", 1, severity="info", reason="nps_detractor"),
            risk_alert("pinned", 1, csm="erin@example.com"),
        ],
    )
    await eventually(lambda: len(recorder.snapshot("/json")) >= 5, what="five deliveries")

    async with service.client() as client:
        items = (await client.get("/v1/alerts")).json()["items"]
    owners = {item["account_id"]: item["assigned_csm"] for item in items}
    assert owners == {
        "owned": "dave@example.com",  # csm from account.updated
        "big": "alice@example.com",  # rule: segment enterprise
        "pro": "bob@example.com",  # rule: plan pro, MRR >= 1000
        "nobody": "cs-team",  # default owner
        "pinned": "erin@example.com",  # csm set on the alert by the scorer
    }
    # Only alice's alert reaches alice's Slack webhook, with score, drivers and link.
    await eventually(lambda: recorder.snapshot("/slack"), what="slack delivery")
    slack = recorder.snapshot("/slack")
    assert len(slack) == 1
    message = slack[0].body
    assert "big" in message["text"] and "health 30" in message["text"]
    blocks = str(message["blocks"])
    assert "usage down 62% vs last 4 weeks" in blocks
    assert "account=big&alert=big-entered_red-1" in blocks
    assert slack[0].signature_ok is None  # Slack payloads are not HMAC-signed


async def test_receiver_down_then_up_delivers_each_once_in_order(
    service: Running, recorder: Recorder
) -> None:
    settings = service.settings
    recorder.stop()  # connection refused from now on
    accounts = ["north", "south", "east"]
    alerts = [risk_alert(a, n) for n in range(6) for a in accounts]
    await publish(settings, settings.topics.risk_alerts, alerts)

    async def failing_attempts() -> bool:
        async with service.client() as client:
            page = (await client.get("/v1/deliveries", params={"state": "pending"})).json()
        return any(item["attempts"] >= 2 for item in page["items"])

    # Down long enough for several retries of the heads of each account.
    await eventually(failing_attempts, what="retries while the receiver is down")
    assert recorder.snapshot() == []
    # SREs see the backlog and how old it is.
    waiting = parse_metrics(await _metrics(service))
    assert metric(waiting, "healthstream_alerts_outbox_depth") >= 1
    assert metric(waiting, "healthstream_alerts_outbox_oldest_age_seconds") > 0
    recorder.start()

    await eventually(lambda: len(recorder.snapshot("/json")) >= len(alerts), what="all delivered")
    await asyncio.sleep(1.0)  # further passes must not re-send anything
    received = recorder.snapshot("/json")
    ids = [r.body["alert"]["alert_id"] for r in received]
    assert sorted(ids) == sorted(a["alert_id"] for a in alerts)  # each exactly once
    by_account: dict[str, list[str]] = defaultdict(list)
    for r in received:
        by_account[r.body["alert"]["account_id"]].append(r.body["alert"]["alert_id"])
    for account in accounts:
        assert by_account[account] == [f"{account}-entered_red-{n}" for n in range(6)]

    async with service.client() as client:
        pending = (await client.get("/v1/deliveries", params={"state": "pending"})).json()
    assert pending["items"] == []
    metrics = await _metrics(service)
    assert "healthstream_alerts_outbox_depth 0.0" in metrics
    assert 'healthstream_alerts_failed_total{channel="json",reason="entered_red"}' in metrics


async def test_invalid_messages_are_dead_lettered_not_dropped(service: Running) -> None:
    settings = service.settings
    year_one = {**risk_alert("ancient", 1), "occurred_at": "0001-01-01T00:30:00+02:00"}
    # Valid for the contract, too long for the csm column of PostgreSQL (SQLite
    # has no length limits and stores it): either way it must not stall the consumer.
    long_owner = risk_alert("long", 1, csm="x" * 300)
    await publish(settings, settings.topics.risk_alerts, [b"{not json", b'{"alert_id": "x"}'])
    await publish(settings, settings.topics.risk_alerts, [year_one, long_owner])
    await publish(settings, settings.topics.risk_alerts, [risk_alert("after", 1)])

    async def after_stored() -> bool:
        return "after-entered_red-1" in await _alert_ids(service)

    await eventually(after_stored, what="the valid alert after invalid ones")
    stored = set(await _alert_ids(service))

    from healthstream.kafka import make_consumer

    consumer = make_consumer(
        settings, settings.topics.dlq(settings.topics.risk_alerts), group_id=None
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        values = [record.value for records in batch.values() for record in records]
    finally:
        await consumer.stop()
    assert b"{not json" in values and b'{"alert_id": "x"}' in values
    assert any(b"ancient" in value for value in values)
    long_dead = any(b"long-entered_red-1" in value for value in values)
    assert long_dead != ("long-entered_red-1" in stored)  # exactly one of the two
    assert stored - {"long-entered_red-1"} == {"after-entered_red-1"}
    async with service.client(None) as client:
        metrics = (await client.get("/metrics")).text
    assert "healthstream_alerts_invalid_messages_total" in metrics


async def test_metrics_count_each_step_by_reason_and_channel(
    service: Running, recorder: Recorder
) -> None:
    settings = service.settings
    before = parse_metrics(await _metrics(service))
    alerts = [
        risk_alert("m1", 1, reason="payment_failed", csm="alice@example.com"),  # + alice's Slack
        risk_alert("m2", 1, reason="payment_failed"),
        risk_alert("m2", 2, reason="payment_failed"),
    ]
    await publish(settings, settings.topics.risk_alerts, [*alerts, alerts[1]])  # one duplicate
    # Five updates of one account in one go, and one of another account.
    await publish(
        settings,
        settings.topics.account_health,
        [health_update("m1", 50.0 + n, n) for n in range(5)] + [health_update("m2", 44.0)],
    )

    async def settled() -> bool:
        async with service.client() as client:
            pending = (await client.get("/v1/deliveries", params={"state": "pending"})).json()
            accounts = (await client.get("/v1/accounts")).json()["items"]
        delivered = len(recorder.snapshot("/json")) == 3 and len(recorder.snapshot("/slack")) == 1
        health = {a["account_id"]: a["health"] and a["health"]["score"] for a in accounts}
        return delivered and pending["items"] == [] and health == {"m1": 54.0, "m2": 44.0}

    await eventually(settled, what="deliveries and health stored")
    after = parse_metrics(await _metrics(service))

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    reason = {"reason": "payment_failed"}
    assert delta("healthstream_alerts_received_total", **reason) == 4
    assert delta("healthstream_alerts_stored_total", **reason) == 3
    assert delta("healthstream_alerts_duplicates_total", **reason) == 1
    assert delta("healthstream_alerts_delivered_total", channel="json", **reason) == 3
    assert delta("healthstream_alerts_delivered_total", channel="slack", **reason) == 1
    assert delta("healthstream_alerts_failed_total", channel="json", **reason) == 0
    for channel, count in (("json", 3), ("slack", 1)):
        for histogram in ("delivery_latency_seconds", "event_to_delivery_seconds"):
            name = f"healthstream_alerts_{histogram}_count"
            assert delta(name, channel=channel) == count, (name, channel)
    assert delta("healthstream_alerts_store_lag_seconds_count") == 4
    assert delta("healthstream_alerts_store_batch_seconds_count", kind="alerts") >= 1
    stored = delta("healthstream_alerts_health_updates_total", result="stored")
    superseded = delta("healthstream_alerts_health_updates_total", result="superseded")
    assert stored >= 2 and stored + superseded == 6  # every update counted once

    async def drained_gauges() -> bool:  # set by the outbox worker's next pass
        now = parse_metrics(await _metrics(service))
        return (
            metric(now, "healthstream_alerts_outbox_depth") == 0
            and metric(now, "healthstream_alerts_outbox_oldest_age_seconds") == 0
        )

    await eventually(drained_gauges, what="outbox gauges back to zero")
