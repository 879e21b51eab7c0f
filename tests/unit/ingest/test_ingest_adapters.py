"""Adapters and signatures as pure functions, on vendor-shaped payloads."""

from __future__ import annotations

import pytest

from services.ingest.adapters import segment, stripe, zendesk
from services.ingest.adapters.signatures import (
    SignatureError,
    segment_signature,
    stripe_signature,
    verify_segment,
    verify_stripe,
    verify_zendesk,
    zendesk_signature,
)
from services.ingest.validation import validate_items
from tests.unit.ingest import vendor_payloads as vp

NOW = 1_714_564_800


def only(conversion: object) -> dict:
    items = conversion.items  # type: ignore[attr-defined]
    assert conversion.errors == []  # type: ignore[attr-defined]
    assert len(items) == 1
    assert validate_items(items, "test").errors == []  # every conversion meets the contract
    return items[0]


def test_stripe_signature_accepts_valid_and_rolled_secrets() -> None:
    body = b'{"id": "evt_1"}'
    header = stripe_signature("whsec_a", body, NOW)
    assert verify_stripe(header, body, "whsec_a", 300, now=NOW + 299) == NOW
    rolled = header + ",v1=" + stripe_signature("whsec_old", body, NOW).split("v1=")[1]
    assert verify_stripe(rolled, body, "whsec_a", 300, now=NOW) == NOW


@pytest.mark.parametrize(
    ("header", "body", "now", "message"),
    [
        (None, b"{}", NOW, "missing"),
        ("v1=abc", b"{}", NOW, "t="),
        ("t=x,v1=abc", b"{}", NOW, "integer"),
        (stripe_signature("whsec_evil", b"{}", NOW), b"{}", NOW, "does not match"),
        (stripe_signature("whsec_a", b"{}", NOW), b"{ }", NOW, "does not match"),
        (stripe_signature("whsec_a", b"{}", NOW), b"{}", NOW + 301, "tolerance"),
        (stripe_signature("whsec_a", b"{}", NOW), b"{}", NOW - 301, "tolerance"),
    ],
)
def test_stripe_signature_rejections(
    header: str | None, body: bytes, now: int, message: str
) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_stripe(header, body, "whsec_a", 300, now=now)


def test_zendesk_and_segment_signatures() -> None:
    body = b'{"a": 1}'
    stamp = "2024-05-01T12:00:00Z"
    verify_zendesk(zendesk_signature("s", body, stamp), stamp, body, "s", 300, now=NOW)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_zendesk(zendesk_signature("s", body, stamp), stamp, body, "s", 300, now=NOW + 900)
    with pytest.raises(SignatureError, match="does not match"):
        verify_zendesk(zendesk_signature("t", body, stamp), stamp, body, "s", 300, now=NOW)
    verify_segment(segment_signature("s", body), body, "s")
    with pytest.raises(SignatureError):
        verify_segment(segment_signature("s", body + b" "), body, "s")


def test_stripe_invoice_paid_and_failed() -> None:
    paid = only(stripe.convert(vp.stripe_invoice("invoice.paid", account="acct-9")))
    assert paid["name"] == "invoice.paid" and paid["type"] == "billing"
    assert paid["account_id"] == "acct-9"
    assert paid["properties"]["amount"] == 49.0
    failed = only(stripe.convert(vp.stripe_invoice("invoice.payment_failed")))
    assert failed["name"] == "payment.failed"
    assert failed["properties"]["amount"] == 49.0
    assert failed["properties"]["attempt_count"] == 2


def test_stripe_account_falls_back_to_customer_and_zero_decimal_currency() -> None:
    event = vp.stripe_invoice()
    invoice = event["data"]["object"]
    del invoice["subscription_details"]
    invoice["currency"] = "jpy"
    invoice["amount_paid"] = 4900
    converted = only(stripe.convert(event))
    assert converted["account_id"] == "cus_Na6dX7aXxi11N4"
    assert converted["properties"]["amount"] == 4900.0
    assert converted["properties"]["currency"] == "JPY"


def test_stripe_subscription_mrr_normalises_yearly_prices() -> None:
    obj = vp.stripe_subscription_object(quantity=2, interval="year")
    mrr, plan = stripe.monthly_recurring_revenue(obj["items"])
    assert (mrr, plan) == (20.0, "Pro")  # 2 x 120.00 a year = 20.00 a month
    created = only(stripe.convert(vp.stripe_subscription("customer.subscription.created")))
    assert created["properties"]["renewal_date"] == "2024-05-20T00:00:00Z"
    deleted = only(stripe.convert(vp.stripe_subscription("customer.subscription.deleted")))
    assert deleted["name"] == "subscription.canceled"
    assert deleted["properties"]["status"] == "canceled"


def test_stripe_unhandled_and_malformed() -> None:
    other = vp.stripe_invoice()
    other["type"] = "customer.created"
    assert stripe.convert(other).ignored == 1
    assert stripe.convert({"object": "list"}).errors[0].loc == ["object"]
    broken = vp.stripe_invoice()
    broken["data"] = {}
    assert stripe.convert(broken).errors[0].loc == ["data", "object"]


def test_segment_maps_spec_names_and_accounts() -> None:
    track = only(segment.convert(vp.segment_track(event="Order Completed")))
    assert track["name"] == "order.placed"
    assert track["properties"]["segment_event"] == "Order Completed"
    group = only(segment.convert(vp.segment_group(account="initech")))
    assert group["account_id"] == "initech" and group["type"] == "account"
    assert group["properties"]["employees"] == 329
    identify = only(segment.convert(vp.segment_identify()))
    assert identify["name"] == "user.identified"
    assert identify["properties"]["user_id"] == "97980cfea0067"
    page = only(segment.convert(vp.segment_page()))
    assert (page["name"], page["properties"]["page"]) == ("page.viewed", "Home")


def test_segment_batch_context_and_errors() -> None:
    track = vp.segment_track()
    del track["context"]["groupId"]
    batch = vp.segment_batch(track, vp.segment_alias(), "junk")  # type: ignore[arg-type]
    batch["context"]["groupId"] = "from-batch"
    out = segment.convert(batch)
    assert [item["account_id"] for item in out.items] == ["from-batch"]
    assert out.ignored == 1
    assert [(e.index, e.loc) for e in out.errors] == [(2, [])]
    no_event = vp.segment_track()
    del no_event["event"]
    assert segment.convert(no_event).errors[0].loc == ["event"]
    bad_props = vp.segment_track()
    bad_props["properties"] = [1, 2]
    assert segment.convert(bad_props).errors[0].loc == ["properties"]


def test_zendesk_ticket_lifecycle() -> None:
    opened = only(zendesk.convert(vp.zendesk_ticket("ticket.created", priority="URGENT")))
    assert opened["name"] == "ticket.opened" and opened["properties"]["priority"] == "urgent"
    solved = only(zendesk.convert(vp.zendesk_solved()))
    assert solved["name"] == "ticket.resolved"
    closed = vp.zendesk_ticket("ticket.status_changed", event={"current": "PENDING"})
    assert only(zendesk.convert(closed))["name"] == "ticket.updated"
    no_priority = only(zendesk.convert(vp.zendesk_ticket(priority=None)))
    assert "priority" not in no_priority["properties"]


def test_zendesk_satisfaction_scale() -> None:
    assert only(zendesk.convert(vp.zendesk_satisfaction("good")))["properties"]["score"] == 5
    assert only(zendesk.convert(vp.zendesk_satisfaction("bad")))["properties"]["score"] == 1
    assert only(zendesk.convert(vp.zendesk_satisfaction(4)))["properties"]["score"] == 4
    assert zendesk.convert(vp.zendesk_satisfaction("unoffered")).ignored == 1
    payload = vp.zendesk_satisfaction()
    del payload["organization"]
    assert zendesk.convert(payload).errors[0].loc == ["organization", "id"]


def test_zendesk_trigger_body_without_time_uses_receipt_time_and_stable_id() -> None:
    payload = {
        "satisfaction_rating": {"id": "208", "score": "Good, I'm satisfied", "ticket_id": "208"},
        "organization": {"id": "8447346622462", "external_id": ""},
    }
    first = only(zendesk.convert(payload))
    again = only(zendesk.convert(payload))
    assert first["properties"]["score"] == 5
    assert first["account_id"] == "8447346622462"  # empty external_id falls back to the id
    assert first["event_id"] == again["event_id"]  # a retried webhook dedupes
    assert first["occurred_at"].endswith("Z")
