"""Vendor webhook payloads written after the vendors' documented examples.

Shapes follow: Segment's Tracking API spec (track/identify/group/page, batch),
Zendesk's webhook event types (zen:event-type:ticket.*) and Satisfaction
Rating object, Stripe's Event object with Invoice and Subscription objects
(API version 2024-06-20). Ids are made unique per call so tests don't collide.
"""

from __future__ import annotations

import uuid
from typing import Any


def _uid() -> str:
    return uuid.uuid4().hex[:16]


# --- Segment ---------------------------------------------------------------


def segment_track(account: str = "acme", event: str = "Feature Used") -> dict[str, Any]:
    return {
        "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
        "context": {
            "library": {"name": "analytics.js", "version": "2.11.1"},
            "page": {"path": "/reports", "url": "https://app.example.com/reports"},
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1)",
            "ip": "108.0.78.21",
            "groupId": account,
        },
        "event": event,
        "integrations": {},
        "messageId": f"ajs-{_uid()}",
        "properties": {"feature": "dashboards", "plan": "pro"},
        "receivedAt": "2024-05-01T19:11:01.266Z",
        "sentAt": "2024-05-01T19:11:01.169Z",
        "timestamp": "2024-05-01T19:11:01.249Z",
        "type": "track",
        "userId": "AiUGstSDIg",
        "originalTimestamp": "2024-05-01T19:11:01.152Z",
    }


def segment_identify(account: str = "acme") -> dict[str, Any]:
    return {
        "anonymousId": "507f191e810c19729de860ea",
        "channel": "browser",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0", "groupId": account},
        "integrations": {"All": False, "Mixpanel": True},
        "messageId": f"022bb90c-{_uid()}",
        "receivedAt": "2024-05-01T12:00:01.000Z",
        "sentAt": "2024-05-01T12:00:00.500Z",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "traits": {
            "name": "Peter Gibbons",
            "email": "peter@example.com",
            "plan": "premium",
            "logins": 5,
        },
        "type": "identify",
        "userId": "97980cfea0067",
        "version": "1.1",
    }


def segment_group(account: str = "acme") -> dict[str, Any]:
    return {
        "anonymousId": "507f191e810c19729de860ea",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0"},
        "groupId": account,
        "integrations": {},
        "messageId": f"022bb90c-{_uid()}",
        "receivedAt": "2024-05-01T12:00:01.000Z",
        "sentAt": "2024-05-01T12:00:00.500Z",
        "timestamp": "2024-05-01T12:00:00.000Z",
        "traits": {
            "name": "Initech",
            "industry": "Technology",
            "employees": 329,
            "plan": "enterprise",
            "total billed": 830,
        },
        "type": "group",
        "userId": "97980cfea0067",
        "version": "1.1",
    }


def segment_page(account: str = "acme") -> dict[str, Any]:
    return {
        "anonymousId": "507f191e810c19729de860ea",
        "context": {"groupId": account},
        "messageId": f"ajs-{_uid()}",
        "name": "Home",
        "properties": {"title": "Welcome | Initech", "url": "http://www.example.com"},
        "timestamp": "2024-05-01T12:00:00.000Z",
        "type": "page",
        "userId": "97980cfea0067",
    }


def segment_alias() -> dict[str, Any]:
    return {
        "type": "alias",
        "messageId": f"ajs-{_uid()}",
        "previousId": "39239-239239-239239-23923",
        "userId": "507f191e81",
        "timestamp": "2024-05-01T12:00:00.000Z",
    }


def segment_batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "batch": list(messages),
        "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}},
        "sentAt": "2024-05-01T12:00:02.000Z",
    }


# --- Zendesk ----------------------------------------------------------------


def zendesk_ticket(
    event_type: str = "ticket.created",
    organization: str = "8447346622462",
    status: str = "OPEN",
    priority: str | None = "HIGH",
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "account_id": 22129848,
        "detail": {
            "actor_id": "8447388090494",
            "assignee_id": "8447388090494",
            "brand_id": "8447346621310",
            "created_at": "2024-05-01T10:12:07Z",
            "custom_status": "8447388597502",
            "description": "Reports page times out",
            "external_id": None,
            "form_id": "8646151517822",
            "group_id": "8447320466430",
            "id": "5158",
            "is_public": True,
            "organization_id": organization,
            "priority": priority,
            "requester_id": "8447388090494",
            "status": status,
            "subject": "Reports page times out",
            "submitter_id": "8447388090494",
            "tags": ["reports", "vip"],
            "type": "INCIDENT",
            "updated_at": "2024-05-01T10:15:07Z",
            "via": {"channel": "web_service"},
        },
        "event": event or {"meta": {"sequence": {"id": "a1b2c3", "position": 1, "total": 1}}},
        "id": str(uuid.uuid4()),
        "subject": "zen:ticket:5158",
        "time": "2024-05-01T10:15:07.672717030Z",
        "type": f"zen:event-type:{event_type}",
        "zendesk_event_version": "2022-11-06",
    }


def zendesk_solved(organization: str = "8447346622462") -> dict[str, Any]:
    return zendesk_ticket(
        "ticket.status_changed",
        organization,
        status="SOLVED",
        event={"current": "SOLVED", "previous": "OPEN", "meta": {"sequence": {"id": "x"}}},
    )


def zendesk_satisfaction(score: Any = "bad", external_id: str = "acme") -> dict[str, Any]:
    """A trigger's JSON body wrapping the Satisfaction Rating object (see docs/ingest.md)."""
    rating_id = int(uuid.uuid4().int % 10**9)
    return {
        "satisfaction_rating": {
            "assignee_id": 135,
            "comment": "Slow to answer",
            "created_at": "2024-05-02T08:00:00Z",
            "group_id": 44,
            "id": rating_id,
            "reason": "The issue took too long to resolve",
            "requester_id": 7881,
            "score": score,
            "ticket_id": 208,
            "updated_at": "2024-05-02T08:00:00Z",
            "url": f"https://example.zendesk.com/api/v2/satisfaction_ratings/{rating_id}.json",
        },
        "organization": {"id": 8447346622462, "external_id": external_id, "name": "Acme"},
    }


# --- Stripe -----------------------------------------------------------------


def _stripe_event(event_type: str, obj: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{_uid()}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1714564800,
        "data": {"object": obj, **data},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def stripe_invoice(event_type: str = "invoice.paid", account: str = "acme") -> dict[str, Any]:
    paid = event_type == "invoice.paid"
    invoice = {
        "id": f"in_{_uid()}",
        "object": "invoice",
        "account_country": "US",
        "amount_due": 4900,
        "amount_paid": 4900 if paid else 0,
        "amount_remaining": 0 if paid else 4900,
        "attempt_count": 1 if paid else 2,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "currency": "usd",
        "customer": "cus_Na6dX7aXxi11N4",
        "customer_email": "billing@acme.example",
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 1},
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if paid else 1714824000,
        "number": "ABCD-0012",
        "paid": paid,
        "period_end": 1714564800,
        "period_start": 1711886400,
        "status": "paid" if paid else "open",
        "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
        "subscription_details": {"metadata": {"account_id": account}},
        "total": 4900,
    }
    return _stripe_event(event_type, invoice)


def stripe_subscription_object(
    status: str = "active", quantity: int = 5, interval: str = "month", account: str = "acme"
) -> dict[str, Any]:
    return {
        "id": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
        "object": "subscription",
        "billing_cycle_anchor": 1679609767,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": 1679609767,
        "currency": "usd",
        "current_period_end": 1716163200,
        "current_period_start": 1713571200,
        "customer": "cus_Na6dX7aXxi11N4",
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_Na6dzxczY5fwHx",
                    "object": "subscription_item",
                    "created": 1679609768,
                    "metadata": {},
                    "price": {
                        "id": "price_1MowQULkdIwHu7ixraBm864M",
                        "object": "price",
                        "active": True,
                        "billing_scheme": "per_unit",
                        "currency": "usd",
                        "lookup_key": None,
                        "nickname": "Pro",
                        "product": "prod_Na6dGcTsmU0I4R",
                        "recurring": {
                            "interval": interval,
                            "interval_count": 1,
                            "usage_type": "licensed",
                        },
                        "type": "recurring",
                        "unit_amount": 1000 if interval == "month" else 12000,
                        "unit_amount_decimal": "1000",
                    },
                    "quantity": quantity,
                    "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
                }
            ],
            "has_more": False,
            "total_count": 1,
        },
        "livemode": False,
        "metadata": {"account_id": account},
        "start_date": 1679609767,
        "status": status,
    }


def stripe_subscription(event_type: str, account: str = "acme") -> dict[str, Any]:
    if event_type == "customer.subscription.updated":
        previous = stripe_subscription_object(quantity=10, account=account)
        return _stripe_event(
            event_type,
            stripe_subscription_object(status="past_due", account=account),
            previous_attributes={"items": previous["items"], "status": "active"},
        )
    if event_type == "customer.subscription.deleted":
        obj = stripe_subscription_object(status="canceled", account=account)
        obj["canceled_at"] = 1714564800
        obj["cancellation_details"]["reason"] = "cancellation_requested"
        return _stripe_event(event_type, obj)
    return _stripe_event(event_type, stripe_subscription_object(account=account))
