"""A scripted account history, in-process through the core.

healthy -> usage decline -> unresolved urgent ticket -> payment failure: the expected
trajectory and exactly the expected alerts.
"""

from __future__ import annotations

from core_helpers import DAY, T0, Driver, ev


def _history() -> Driver:
    d = Driver()
    d.send(ev("account", "account.created", 0, csm="ann", mrr=900, renewal_date="2024-12-01"))
    d.daily_usage(0, 34, per_day=6, users=4)  # healthy: 6 events a day, 4 users
    d.daily_usage(35, 48, per_day=1, users=1)  # usage fades to one event a day
    d.send(ev("ticket", "ticket.opened", 48.5, ticket_id="Z1", priority="urgent"))
    for k in range(1, 4):  # timers without events: the urgent ticket passes its 4 h SLA
        d.tick(48.5 + k * 0.1)
    d.send(ev("billing", "payment.failed", 49, amount=900.0, currency="USD"))
    return d


def _score_at(d: Driver, day: float) -> float:
    return next(
        o.health.score
        for o in reversed(d.outcomes)
        if o.health is not None and o.health.as_of <= T0 + day * DAY
    )


def test_trajectory() -> None:
    d = _history()
    healthy, declined = _score_at(d, 34.5), _score_at(d, 48.4)
    after_ticket, after_payment = _score_at(d, 48.9), _score_at(d, 49)
    assert healthy >= 90
    assert 75 <= declined <= healthy - 10
    assert after_ticket < declined
    assert after_payment < after_ticket
    final = d.outcomes[-1].health
    assert final is not None and final.band == "yellow"
    assert [x.feature for x in final.drivers[:3]] == [
        "usage_trend",
        "payment_failures_30d",
        "over_sla_tickets",
    ]
    assert final.drivers[0].sentence == "usage down 71% vs last 4 weeks"  # 7/7 vs 98/28 a day


def test_exactly_the_expected_alerts() -> None:
    d = _history()
    alerts = [a for o in d.outcomes for a in o.alerts]
    assert [(a.reason, a.severity, round((a.occurred_at - T0) / DAY, 1)) for a in alerts] == [
        ("usage_decline", "warning", 40.3),
        ("ticket_past_sla", "critical", 48.7),
        ("payment_failed", "critical", 49.0),
    ]
    assert [a.dedupe_key for a in alerts] == [
        "acme:usage_decline:1",
        "acme:ticket_past_sla:1",
        "acme:payment_failed:1",
    ]
    assert all(a.csm == "ann" for a in alerts)
    payment = alerts[-1]
    assert payment.drivers[0].component == "billing"
    assert payment.message == "payment failed (1 in the last 30 days)"
    assert payment.previous_score is not None and payment.previous_score > payment.score


def test_replay_yields_the_same_alert_ids_and_scores() -> None:
    first, second = _history(), _history()  # fresh event ids, same content
    ids = [[a.alert_id for a in o.alerts] for o in first.outcomes]
    assert ids == [[a.alert_id for a in o.alerts] for o in second.outcomes]
    assert [o.health for o in first.outcomes] == [o.health for o in second.outcomes]
