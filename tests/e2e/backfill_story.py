"""One account's 70-day history, the way a platform team backfills it on day one.

Six healthy weeks, three weeks of fading usage, an urgent ticket nobody answers,
an NPS of 3, then a failed payment: in event-time order the core raises
``usage_decline``, ``ticket_past_sla`` and ``nps_detractor`` before the payment
fails, and ``payment_failed`` at the end. Dated to end a few days before ``end``
so it is a history, not live traffic.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

USERS = ["ana", "ben", "chen", "dia", "eli"]
FEATURES = ["reports", "alerts", "export", "api"]


def story(account: str, end: datetime) -> list[dict[str, Any]]:
    start = (end - timedelta(days=74)).replace(hour=0, minute=0, second=0, microsecond=0)
    events: list[dict[str, Any]] = []

    def add(day: float, type_: str, name: str, **props: Any) -> None:
        when = start + timedelta(days=day)
        events.append(
            {
                "event_id": f"{account}-{len(events) + 1}",
                "account_id": account,
                "type": type_,
                "name": name,
                "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "properties": props,
            }
        )

    add(0, "account", "account.created", plan="pro", mrr=500, seats=5)
    add(0.01, "billing", "subscription.created", plan="pro", mrr=500)
    for day in range(63):
        healthy = day < 42
        users = USERS if healthy else USERS[: max(0, 3 - (day - 42) // 7)]
        for n, user in enumerate(users):
            hour = 9 + n / 2
            add(day + hour / 24, "usage", "login", user_id=user)
            if healthy or day % 3 == 0:
                add(
                    day + (hour + 0.2) / 24,
                    "usage",
                    "feature.used",
                    user_id=user,
                    feature=FEATURES[(day + n) % len(FEATURES)],
                )
    add(55.5, "ticket", "ticket.opened", ticket_id="T-1", priority="urgent")
    add(58.5, "feedback", "nps.response", score=3)
    add(69.5, "billing", "payment.failed", amount=500, currency="USD")
    return events
