"""Vendor webhooks end to end: real server, real broker, vendor-shaped payloads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from healthstream.settings import Settings
from services.ingest.adapters.signatures import (
    segment_signature,
    stripe_signature,
    zendesk_signature,
)
from tests.integration.ingest.live import (
    INGEST_KEY,
    READ_ONLY_KEY,
    STRIPE_SECRET,
    ZENDESK_SECRET,
    LiveServer,
    ingest_settings,
    read_topic,
    values,
)
from tests.unit.ingest import vendor_payloads as vp

JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {INGEST_KEY}"}


async def send(
    server: LiveServer, path: str, payload: Any, headers: dict[str, str], raw: bytes | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        body = raw if raw is not None else orjson.dumps(payload)
        return await client.post(path, content=body, headers=headers)


def stripe_headers(body: bytes, at: int | None = None, secret: str = STRIPE_SECRET) -> dict:
    return {**JSON, "Stripe-Signature": stripe_signature(secret, body, at or int(time.time()))}


async def test_segment_track_identify_group_page_and_batch(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    track = vp.segment_track(event="Signed In")
    r = await send(ingest_server, "/v1/sources/segment", track, AUTH)
    assert r.status_code == 202 and r.json()["accepted"] == 1
    batch = vp.segment_batch(
        vp.segment_track(event="Report Exported"),
        vp.segment_identify(),
        vp.segment_group(),
        vp.segment_page(),
        vp.segment_alias(),
    )
    r = await send(ingest_server, "/v1/sources/segment", batch, AUTH)
    assert r.status_code == 202
    assert r.json() == {"accepted": 4, "duplicates": 0, "dead_lettered": 0, "ignored": 1}
    r = await send(ingest_server, "/v1/sources/segment", batch, AUTH)  # Segment retries
    assert (r.json()["accepted"], r.json()["duplicates"]) == (0, 4)

    topics = kafka_settings.topics
    usage = values(await read_topic(kafka_settings, topics.usage, expected=3))
    account = values(await read_topic(kafka_settings, topics.account, expected=2))
    by_name = {e["name"]: e for e in usage + account}
    assert set(by_name) == {
        "login",
        "Report Exported",
        "page.viewed",
        "user.identified",
        "account.updated",
    }
    login = by_name["login"]
    assert login["event_id"] == f"segment:{track['messageId']}"
    assert login["account_id"] == "acme"
    assert login["source"] == "segment"
    assert login["occurred_at"] == "2024-05-01T19:11:01.249000Z"
    assert login["properties"]["user_id"] == "AiUGstSDIg"
    assert login["properties"]["segment_event"] == "Signed In"
    assert by_name["account.updated"]["properties"]["plan"] == "enterprise"
    assert by_name["user.identified"]["type"] == "account"

    r = await send(ingest_server, "/v1/sources/segment", track, JSON)
    assert r.status_code == 401
    r = await send(
        ingest_server,
        "/v1/sources/segment",
        track,
        {**JSON, "Authorization": f"Bearer {READ_ONLY_KEY}"},
    )
    assert r.status_code == 403
    no_account = vp.segment_track()
    del no_account["context"]["groupId"]
    bad = vp.segment_batch(vp.segment_track(), no_account)
    r = await send(ingest_server, "/v1/sources/segment", bad, AUTH)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {
            "index": 1,
            "loc": ["context", "groupId"],
            "msg": "Segment message has no account: set context.groupId",
        }
    ]


async def test_segment_shared_secret_signature(kafka_settings: Settings) -> None:
    server = LiveServer(ingest_settings(kafka_settings, segment_shared_secret="seg-s3cret")).start()
    try:
        body = orjson.dumps(vp.segment_track())
        signed = {**AUTH, "X-Signature": segment_signature("seg-s3cret", body)}
        assert (
            await send(server, "/v1/sources/segment", None, signed, raw=body)
        ).status_code == 202
        forged = {**AUTH, "X-Signature": segment_signature("guess", body)}
        r = await send(server, "/v1/sources/segment", None, forged, raw=body)
        assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
    finally:
        server.stop()


async def test_zendesk_tickets_and_satisfaction(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    created = vp.zendesk_ticket("ticket.created")
    solved = vp.zendesk_solved()
    priority = vp.zendesk_ticket(
        "ticket.priority_changed", event={"current": "URGENT", "previous": "HIGH"}
    )
    for payload in (created, solved, priority):
        r = await send(ingest_server, "/v1/sources/zendesk", payload, AUTH)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    good, bad = vp.zendesk_satisfaction("good"), vp.zendesk_satisfaction("bad")
    offered = vp.zendesk_satisfaction("offered")
    for payload in (good, bad):
        assert (await send(ingest_server, "/v1/sources/zendesk", payload, AUTH)).status_code == 202
    r = await send(ingest_server, "/v1/sources/zendesk", offered, AUTH)
    assert r.json() == {"accepted": 0, "duplicates": 0, "dead_lettered": 0, "ignored": 1}
    user_event = {"type": "zen:event-type:user.active_changed", "id": "u1", "detail": {}}
    r = await send(ingest_server, "/v1/sources/zendesk", user_event, AUTH)
    assert r.status_code == 202 and r.json()["ignored"] == 1
    no_org = vp.zendesk_ticket(organization="0")
    r = await send(ingest_server, "/v1/sources/zendesk", no_org, AUTH)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["detail", "organization_id"]

    topics = kafka_settings.topics
    tickets = values(await read_topic(kafka_settings, topics.ticket, expected=3))
    names = sorted(t["name"] for t in tickets)
    assert names == ["ticket.opened", "ticket.resolved", "ticket.updated"]
    opened = next(t for t in tickets if t["name"] == "ticket.opened")
    assert opened["account_id"] == "8447346622462"
    assert opened["event_id"] == f"zendesk:{created['id']}"
    assert opened["properties"]["priority"] == "high"
    assert opened["properties"]["ticket_id"] == "5158"
    resolved = next(t for t in tickets if t["name"] == "ticket.resolved")
    assert resolved["properties"]["status"] == "solved"
    assert resolved["properties"]["previous_status"] == "open"
    updated = next(t for t in tickets if t["name"] == "ticket.updated")
    assert updated["properties"]["priority"] == "urgent"
    csat = values(await read_topic(kafka_settings, topics.feedback, expected=2))
    assert sorted(c["properties"]["score"] for c in csat) == [1, 5]
    assert {c["account_id"] for c in csat} == {"acme"}
    assert {c["name"] for c in csat} == {"csat.response"}


async def test_zendesk_signature_verified_when_secret_configured(kafka_settings: Settings) -> None:
    server = LiveServer(
        ingest_settings(kafka_settings, zendesk_webhook_secret=ZENDESK_SECRET)
    ).start()
    try:
        body = orjson.dumps(vp.zendesk_ticket())
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        signed = {
            **AUTH,
            "X-Zendesk-Webhook-Signature": zendesk_signature(ZENDESK_SECRET, body, now),
            "X-Zendesk-Webhook-Signature-Timestamp": now,
        }
        assert (
            await send(server, "/v1/sources/zendesk", None, signed, raw=body)
        ).status_code == 202
        tampered = body.replace(b"HIGH", b"LOW!")
        r = await send(server, "/v1/sources/zendesk", None, signed, raw=tampered)
        assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
        old = "2024-01-01T00:00:00Z"
        replayed = {
            **AUTH,
            "X-Zendesk-Webhook-Signature": zendesk_signature(ZENDESK_SECRET, body, old),
            "X-Zendesk-Webhook-Signature-Timestamp": old,
        }
        r = await send(server, "/v1/sources/zendesk", None, replayed, raw=body)
        assert r.status_code == 401 and "tolerance" in r.json()["message"]
        r = await send(server, "/v1/sources/zendesk", None, AUTH, raw=body)
        assert r.status_code == 401 and "missing" in r.json()["message"]
    finally:
        server.stop()


async def test_stripe_events_signed_forged_and_replayed(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    events = [
        vp.stripe_invoice("invoice.paid"),
        vp.stripe_invoice("invoice.payment_failed"),
        vp.stripe_subscription("customer.subscription.created"),
        vp.stripe_subscription("customer.subscription.updated"),
        vp.stripe_subscription("customer.subscription.deleted"),
    ]
    for payload in events:
        body = orjson.dumps(payload)
        r = await send(ingest_server, "/v1/sources/stripe", None, stripe_headers(body), raw=body)
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text

    ignored = vp.stripe_invoice("invoice.paid")
    ignored["type"] = "charge.refunded"
    body = orjson.dumps(ignored)
    r = await send(ingest_server, "/v1/sources/stripe", None, stripe_headers(body), raw=body)
    assert r.status_code == 202 and r.json()["ignored"] == 1

    # Forged: signed with the wrong secret; tampered: body changed after signing.
    body = orjson.dumps(vp.stripe_invoice())
    forged = stripe_headers(body, secret="whsec_attacker")
    r = await send(ingest_server, "/v1/sources/stripe", None, forged, raw=body)
    assert r.status_code == 401 and r.json()["error"] == "invalid_signature"
    tampered = body.replace(b"4900", b"1")
    r = await send(ingest_server, "/v1/sources/stripe", None, stripe_headers(body), raw=tampered)
    assert r.status_code == 401
    r = await send(ingest_server, "/v1/sources/stripe", None, JSON, raw=body)
    assert r.status_code == 401 and "missing" in r.json()["message"]
    # Replayed later: a valid signature from 10 minutes ago is outside the tolerance.
    stale = stripe_headers(body, at=int(time.time()) - 600)
    r = await send(ingest_server, "/v1/sources/stripe", None, stale, raw=body)
    assert r.status_code == 401 and "tolerance" in r.json()["message"]
    # Replayed at once (inside the tolerance): same Stripe event id, so a duplicate.
    replay = orjson.dumps(events[0])
    r = await send(ingest_server, "/v1/sources/stripe", None, stripe_headers(replay), raw=replay)
    assert r.status_code == 202 and (r.json()["accepted"], r.json()["duplicates"]) == (0, 1)

    billing = values(await read_topic(kafka_settings, kafka_settings.topics.billing, expected=5))
    assert len(billing) == 5
    by_name = {e["name"]: e for e in billing}
    assert set(by_name) == {
        "invoice.paid",
        "payment.failed",
        "subscription.created",
        "subscription.updated",
        "subscription.canceled",
    }
    paid = by_name["invoice.paid"]
    assert paid["event_id"] == f"stripe:{events[0]['id']}"
    assert paid["account_id"] == "acme"
    assert paid["occurred_at"] == "2024-05-01T12:00:00Z"
    assert paid["properties"]["amount"] == 49.0 and paid["properties"]["currency"] == "USD"
    failed = by_name["payment.failed"]["properties"]
    assert failed["attempt_count"] == 2 and failed["next_payment_attempt"] == "2024-05-04T12:00:00Z"
    assert by_name["subscription.created"]["properties"]["mrr"] == 50.0
    updated = by_name["subscription.updated"]["properties"]
    assert (updated["mrr"], updated["previous_mrr"]) == (50.0, 100.0)
    assert (updated["status"], updated["previous_status"]) == ("past_due", "active")
    canceled = by_name["subscription.canceled"]["properties"]
    assert canceled["cancellation_reason"] == "cancellation_requested"


async def test_stripe_disabled_without_secret(kafka_settings: Settings) -> None:
    server = LiveServer(ingest_settings(kafka_settings, stripe_webhook_secret=None)).start()
    try:
        body = orjson.dumps(vp.stripe_invoice())
        r = await send(server, "/v1/sources/stripe", None, stripe_headers(body), raw=body)
        assert r.status_code == 401 and "HEALTHSTREAM_STRIPE_WEBHOOK_SECRET" in r.json()["message"]
    finally:
        server.stop()
