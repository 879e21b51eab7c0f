"""Scripted event histories and the in-process reference (the pure core) for scorer tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.scorer.core import AccountState, Scorecard, ScoringEngine, load_scorecard, parse_event
from services.scorer.core.events import EVENT_TYPES

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Script:
    """Builds canonical events with unique ids and event times relative to T0."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.n = 0

    def event(self, day: float, type_: str, name: str, **props: Any) -> dict[str, Any]:
        self.n += 1
        ts = (T0 + timedelta(days=day, hours=10)).isoformat().replace("+00:00", "Z")
        return {
            "event_id": f"{self.account}-{self.n}",
            "account_id": self.account,
            "type": type_,
            "name": name,
            "occurred_at": ts,
            "source": "replay",
            "properties": props,
        }


def scripted_phases(account: str = "acme") -> list[list[dict[str, Any]]]:
    """healthy -> usage decline -> unresolved urgent ticket -> payment failure.

    Each phase uses one topic, so the order in which the scorer consumes an
    account's events is exactly the scripted order (Kafka orders per partition,
    not across topics) when phases are published one after the other.
    """
    s = Script(account)
    created = [
        s.event(0, "account", "account.created", plan="pro", mrr=1000, csm="dana@example.com")
    ]
    subscribed = [s.event(0, "billing", "subscription.created", mrr=1000, plan="pro")]
    healthy = []
    for day in range(35):
        healthy += [s.event(day + u / 100, "usage", "login", user_id=f"u{u}") for u in range(5)]
        healthy.append(s.event(day, "usage", "feature.used", feature=f"f{day % 6}", user_id="u1"))
    decline = [s.event(day, "usage", "login", user_id="u1") for day in range(36, 50, 4)]
    ticket = [s.event(50, "ticket", "ticket.opened", priority="urgent", ticket_id="T1")]
    after_sla = [s.event(53, "usage", "login", user_id="u1")]
    payment = [s.event(54, "billing", "payment.failed", amount=1000, currency="USD")]
    tail = [s.event(55, "usage", "login", user_id="u1")]
    return [created, subscribed, healthy, decline, ticket, after_sla, payment, tail]


def declining_accounts(accounts: int, prefix: str = "acct") -> list[dict[str, Any]]:
    """Usage-only histories (one topic: per-account order is the publish order).

    Two thirds of the accounts decline after five healthy weeks, so usage
    alerts fire; all events are interleaved day by day like a real stream.
    """
    scripts = [Script(f"{prefix}{i:03d}") for i in range(accounts)]
    events = []
    for day in range(56):
        for i, s in enumerate(scripts):
            declining = i % 3 != 0 and day >= 35
            if declining and day % 5:
                continue
            users = 1 if declining else 4
            for u in range(users):
                events.append(s.event(day + u / 100, "usage", "login", user_id=f"u{u}"))
            if not declining:
                events.append(s.event(day, "usage", "feature.used", feature=f"f{day % 5}"))
    return events


FLEET_KINDS = ("healthy", "fading", "failing", "ticketed")
FLEET_DAYS = 42


def fleet(accounts: int, prefix: str = "fleet") -> list[dict[str, Any]]:
    """Multi-topic histories in publish order (day by day across accounts, like live traffic).

    Account ``i`` is ``FLEET_KINDS[i % 4]``: healthy; fading (usage falls off after
    four weeks); failing (two failed payments); ticketed (an urgent ticket nobody
    answers, then an NPS of 2). Every account ends with one login at the same moment,
    so a timer tick at the end changes nobody: the runs compare exactly.
    """
    scripts = [Script(f"{prefix}{i:03d}") for i in range(accounts)]
    events = []
    for s in scripts:
        events.append(s.event(0, "account", "account.created", plan="pro", mrr=300, seats=4))
    for day in range(FLEET_DAYS):
        for i, s in enumerate(scripts):
            kind = FLEET_KINDS[i % 4]
            users = 4
            if kind == "fading" and day >= 28:
                users = 1 if day % 4 == 0 else 0
            for u in range(users):
                events.append(s.event(day + u / 100, "usage", "login", user_id=f"u{u}"))
            if users == 4:
                events.append(s.event(day + 0.05, "usage", "feature.used", feature=f"f{day % 5}"))
            if kind == "failing" and day in (30, 35):
                events.append(s.event(day + 0.1, "billing", "payment.failed", amount=300))
            if kind == "ticketed" and day == 29:
                events.append(
                    s.event(day + 0.1, "ticket", "ticket.opened", ticket_id="T1", priority="urgent")
                )
            if kind == "ticketed" and day == 33:
                events.append(s.event(day + 0.1, "feedback", "nps.response", score=2))
    for s in scripts:
        events.append(s.event(FLEET_DAYS, "usage", "login", user_id="u0"))
    return events


TOPIC_RANK = {kind: i for i, kind in enumerate(sorted(EVENT_TYPES))}


def time_ordered(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events in the order the streaming scorer applies an account's events: by event
    time, ties by topic (the aligner's fixed tie-break), then as listed."""
    return sorted(events, key=lambda e: (parse_event(e).ts, TOPIC_RANK[e["type"]]))


class Reference:
    """The core in-process: what the streaming scorer must agree with."""

    def __init__(self, scorecard: Scorecard | None = None) -> None:
        self.engine = ScoringEngine(scorecard or load_scorecard(None))
        self.states: dict[str, AccountState] = {}
        self.health: list[tuple[str, float, str]] = []
        self.alert_ids: list[str] = []
        self.alert_reasons: list[str] = []

    def apply(self, events: Iterable[dict[str, Any]]) -> Reference:
        for raw in events:
            event = parse_event(raw)
            outcome = self.engine.apply(self.states.get(event.account_id), event)
            if outcome.duplicate:
                continue
            self.states[event.account_id] = outcome.state
            if outcome.health is not None:
                self.health.append((event.account_id, outcome.health.score, outcome.health.band))
            for alert in outcome.alerts:
                self.alert_ids.append(alert.alert_id)
                self.alert_reasons.append(alert.reason)
        return self

    def score(self, state: AccountState, now: float) -> float:
        return self.engine.score(state, now).score
