"""Stripe webhook events to canonical ``billing`` events.

Handled (Stripe event type -> canonical name):

* ``invoice.paid`` -> ``invoice.paid`` (amount = ``amount_paid``)
* ``invoice.payment_failed`` -> ``payment.failed`` (amount = ``amount_due``,
  ``attempt_count``, ``next_payment_attempt``)
* ``customer.subscription.created`` / ``.updated`` -> ``subscription.created`` /
  ``subscription.updated`` (``mrr`` from the items' recurring prices, ``plan``,
  ``status``; on updates ``previous_status`` / ``previous_mrr`` from
  ``previous_attributes``)
* ``customer.subscription.deleted`` -> ``subscription.canceled``

Other event types are acknowledged and ignored (Stripe retries anything else).
Amounts are converted from minor units (cents) except for zero-decimal
currencies. The account is ``metadata.account_id`` of the object (or of the
invoice's subscription details), else the Stripe customer id. The event id is
``stripe:<evt id>``, so Stripe's retries and replays dedupe.
"""

from __future__ import annotations

from typing import Any

from services.ingest.adapters.base import Conversion, as_text, compact, dig, epoch_to_rfc3339

#: Stripe's zero-decimal currencies: amounts are already in whole units.
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
#: Months per billing interval, to normalise any recurring price to monthly revenue.
MONTHS_PER_INTERVAL = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}
HANDLED = {
    "invoice.paid": "invoice.paid",
    "invoice.payment_failed": "payment.failed",
    "customer.subscription.created": "subscription.created",
    "customer.subscription.updated": "subscription.updated",
    "customer.subscription.deleted": "subscription.canceled",
}


def _major(amount: Any, currency: str | None) -> float | None:
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return None
    if currency and currency.lower() in ZERO_DECIMAL:
        return float(amount)
    return amount / 100


def _currency(obj: dict[str, Any]) -> str | None:
    currency = obj.get("currency")
    return currency.upper() if isinstance(currency, str) else None


def _account(obj: dict[str, Any]) -> str | None:
    for path in (
        ("metadata", "account_id"),
        ("subscription_details", "metadata", "account_id"),
        ("parent", "subscription_details", "metadata", "account_id"),
    ):
        found = as_text(dig(obj, *path))
        if found:
            return found
    customer = obj.get("customer")
    if isinstance(customer, dict):  # an expanded customer object
        customer = customer.get("id")
    return as_text(customer)


def monthly_recurring_revenue(items: Any) -> tuple[float | None, str | None]:
    """(MRR in major units, plan) from a subscription's ``items`` list object."""
    data = dig(items, "data") if isinstance(items, dict) else None
    if not isinstance(data, list):
        return None, None
    total = 0.0
    plan: str | None = None
    for item in data:
        price = dig(item, "price") or dig(item, "plan")
        if not isinstance(price, dict):
            continue
        unit = price.get("unit_amount", price.get("amount"))
        interval = dig(price, "recurring", "interval") or price.get("interval")
        count = dig(price, "recurring", "interval_count") or price.get("interval_count") or 1
        quantity = item.get("quantity") if isinstance(item.get("quantity"), int) else 1
        major = _major(unit, price.get("currency"))
        if major is None or interval not in MONTHS_PER_INTERVAL or not isinstance(count, int):
            continue
        total += major * quantity / (MONTHS_PER_INTERVAL[interval] * max(count, 1))
        plan = plan or as_text(price.get("nickname")) or as_text(price.get("lookup_key"))
        plan = plan or as_text(price.get("id"))
    return round(total, 2), plan


def _invoice_props(obj: dict[str, Any], paid: bool) -> dict[str, Any]:
    currency = _currency(obj)
    subscription = obj.get("subscription") or dig(
        obj, "parent", "subscription_details", "subscription"
    )
    props = {
        "amount": _major(obj.get("amount_paid" if paid else "amount_due"), currency),
        "currency": currency,
        "invoice_id": as_text(obj.get("id")),
        "subscription_id": as_text(subscription),
        "status": obj.get("status") if isinstance(obj.get("status"), str) else None,
        "billing_reason": obj.get("billing_reason"),
    }
    if not paid:
        props["attempt_count"] = obj.get("attempt_count")
        props["next_payment_attempt"] = epoch_to_rfc3339(obj.get("next_payment_attempt"))
    return props


def _subscription_props(obj: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    mrr, plan = monthly_recurring_revenue(obj.get("items"))
    period_end = obj.get("current_period_end") or dig(obj, "items", "data")
    if isinstance(period_end, list):  # newer API versions: per item
        period_end = dig(period_end[0], "current_period_end") if period_end else None
    props: dict[str, Any] = {
        "subscription_id": as_text(obj.get("id")),
        "status": obj.get("status") if isinstance(obj.get("status"), str) else None,
        "mrr": mrr,
        "currency": _currency(obj),
        "plan": plan,
        "renewal_date": epoch_to_rfc3339(period_end),
        "cancel_at_period_end": obj.get("cancel_at_period_end"),
        "cancellation_reason": dig(obj, "cancellation_details", "reason"),
    }
    if isinstance(previous.get("status"), str):
        props["previous_status"] = previous["status"]
    if "items" in previous:
        props["previous_mrr"], props["previous_plan"] = monthly_recurring_revenue(previous["items"])
    return props


def convert(payload: Any) -> Conversion:
    out = Conversion()
    if not isinstance(payload, dict) or payload.get("object") != "event":
        out.fail(0, ["object"], 'not a Stripe event (expected "object": "event")')
        return out
    event_type = payload.get("type")
    if event_type not in HANDLED:
        out.ignored += 1
        return out
    obj = dig(payload, "data", "object")
    if not isinstance(obj, dict):
        out.fail(0, ["data", "object"], "Stripe event has no data.object")
        return out
    event_id = as_text(payload.get("id"))
    if not event_id:
        out.fail(0, ["id"], "Stripe event has no id")
        return out
    account = _account(obj)
    if not account:
        out.fail(0, ["data", "object", "customer"], "no customer or metadata.account_id")
        return out
    if event_type.startswith("invoice."):
        props = _invoice_props(obj, paid=event_type == "invoice.paid")
    else:
        previous = dig(payload, "data", "previous_attributes")
        props = _subscription_props(obj, previous if isinstance(previous, dict) else {})
    props["stripe_customer"] = (
        as_text(obj.get("customer"))
        if not isinstance(obj.get("customer"), dict)
        else as_text(obj["customer"].get("id"))
    )
    out.add(
        0,
        {
            "event_id": f"stripe:{event_id}",
            "account_id": account,
            "type": "billing",
            "name": HANDLED[event_type],
            "occurred_at": epoch_to_rfc3339(payload.get("created")),
            "source": "stripe",
            "properties": compact(props),
        },
    )
    return out
