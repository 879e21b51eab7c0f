"""Each alert rule, its hysteresis and its cooldown per account and reason."""

from __future__ import annotations

from core_helpers import Driver, ev, usage

from services.scorer.core import Scorecard
from services.scorer.core.rules import alert_id, dedupe_key


def _card(**rules: dict[str, object]) -> Scorecard:
    base = Scorecard().model_dump()
    for name, patch in rules.items():
        base["rules"][name].update(patch)
    return Scorecard.model_validate(base)


def _only(d: Driver, reason: str) -> list[str]:
    return [r for r in d.alerts if r == reason]


def test_payment_failed_fires_immediately_each_time_without_cooldown() -> None:
    d = Driver()
    out = d.send(ev("billing", "payment.failed", 0, amount=5.0))
    assert [a.reason for a in out.alerts] == ["payment_failed"]
    d.send(ev("billing", "payment.failed", 0.1))
    assert _only(d, "payment_failed") == ["payment_failed", "payment_failed"]
    keys = [a.dedupe_key for o in d.outcomes for a in o.alerts if a.reason == "payment_failed"]
    assert keys == ["acme:payment_failed:1", "acme:payment_failed:2"]


def test_payment_failed_cooldown_suppresses_repeats() -> None:
    d = Driver(_card(payment_failed={"cooldown_hours": 24}))
    d.send(ev("billing", "payment.failed", 0), ev("billing", "payment.failed", 0.5))
    assert _only(d, "payment_failed") == ["payment_failed"]
    d.send(ev("billing", "payment.failed", 1.1))
    assert _only(d, "payment_failed") == ["payment_failed", "payment_failed"]


def test_past_due_fires_once_per_episode() -> None:
    d = Driver()
    d.send(ev("billing", "subscription.updated", 0, status="past_due"))
    d.send(ev("billing", "subscription.updated", 1, status="past_due"))
    assert _only(d, "past_due") == ["past_due"]
    d.send(ev("billing", "invoice.paid", 2))
    d.send(ev("billing", "invoice.past_due", 6))  # after the 72 h cooldown: a new episode
    assert _only(d, "past_due") == ["past_due", "past_due"]


def test_entered_red_hysteresis_and_cooldown() -> None:
    d = Driver(_card(entered_red={"cooldown_hours": 0}))
    d.send(ev("feedback", "nps.response", 0, score=2))  # sentiment only: score 20, red
    d.send(ev("feedback", "nps.response", 0.1, score=5))  # 50..55: inside the hysteresis band
    d.send(ev("feedback", "nps.response", 0.2, score=3))  # red again, but never re-armed
    assert d.alerts.count("entered_red") == 1
    d.send(ev("feedback", "nps.response", 0.3, score=6))  # >= 55: re-armed
    d.send(ev("feedback", "nps.response", 0.4, score=1))
    assert d.alerts.count("entered_red") == 2
    cooled = Driver()  # default 72 h cooldown: the second entry is suppressed
    for i, score in enumerate((2, 6, 1)):
        cooled.send(ev("feedback", "nps.response", i * 0.1, score=score))
    assert cooled.alerts.count("entered_red") == 1


def test_nps_detractor() -> None:
    d = Driver()
    d.send(ev("feedback", "nps.response", 0, score=9))
    assert d.alerts == []
    d.send(ev("feedback", "nps.response", 1, score=4))
    assert _only(d, "nps_detractor") == ["nps_detractor"]
    d.send(ev("feedback", "nps.response", 2, score=3))  # still a detractor: same episode
    assert _only(d, "nps_detractor") == ["nps_detractor"]


def test_score_drop_in_7_days() -> None:
    d = Driver(_card(score_drop={"threshold": 15}))
    d.daily_usage(0, 20)
    d.send(ev("ticket", "ticket.opened", 20.5, ticket_id="A", priority="urgent"))
    d.send(ev("ticket", "ticket.opened", 20.5, ticket_id="B", priority="urgent"))
    d.send(ev("billing", "payment.failed", 21))
    assert "score_drop" in d.alerts
    drop = next(a for o in d.outcomes for a in o.alerts if a.reason == "score_drop")
    assert drop.previous_score is not None and drop.message.startswith("health dropped")


def test_usage_decline_needs_dense_history_and_rearms_with_hysteresis() -> None:
    d = Driver()
    d.daily_usage(0, 34, per_day=6)
    d.daily_usage(35, 45, per_day=1)
    assert d.alerts.count("usage_decline") == 1
    d.daily_usage(46, 70, per_day=6)  # recovers (re-arms), then declines again after cooldown
    d.daily_usage(71, 80, per_day=1)
    assert d.alerts.count("usage_decline") == 2
    sparse = Driver()  # an order every 10 days never has a "trend"
    for day in range(0, 200, 10):
        sparse.send(usage(day))
    assert "usage_decline" not in sparse.alerts


def test_inactivity_fires_from_a_tick_and_scales_with_the_usual_gap() -> None:
    d = Driver()
    d.daily_usage(0, 10)
    d.tick(23)
    assert _only(d, "inactivity") == []
    d.tick(25)
    assert _only(d, "inactivity") == ["inactivity"]
    d.tick(26)
    assert _only(d, "inactivity") == ["inactivity"]
    sparse = Driver()
    for day in (0, 30, 60):
        sparse.send(usage(day))
    sparse.tick(60 + 80)  # 80 days < 3 x 30-day rhythm
    assert "inactivity" not in sparse.alerts
    sparse.tick(60 + 91)
    assert "inactivity" in sparse.alerts


def test_ticket_past_sla_only_for_high_and_urgent() -> None:
    d = Driver()
    d.send(ev("ticket", "ticket.opened", 0, ticket_id="L", priority="low"))
    d.tick(6)  # low is past its 120 h SLA, but only high/urgent alert
    assert "ticket_past_sla" not in d.alerts
    d.send(ev("ticket", "ticket.opened", 6, ticket_id="H", priority="high"))
    d.tick(6.9)
    assert "ticket_past_sla" not in d.alerts
    d.tick(7.1)
    assert "ticket_past_sla" in d.alerts


def test_renewal_at_risk_only_inside_the_window() -> None:
    d = Driver()
    d.send(ev("account", "account.created", 0, renewal_date="2024-09-01"))  # day 123
    d.send(ev("billing", "payment.failed", 1), ev("billing", "payment.failed", 1.1))
    assert "renewal_at_risk" not in d.alerts  # low health, but renewal is 4 months away
    d.send(ev("billing", "payment.failed", 70))
    assert "renewal_at_risk" in d.alerts


def test_disabled_rule_never_fires() -> None:
    d = Driver(_card(payment_failed={"enabled": False}))
    d.send(ev("billing", "payment.failed", 0))
    assert "payment_failed" not in d.alerts


def test_alert_ids_are_stable_and_bounded() -> None:
    assert alert_id("a", "past_due", 1) == alert_id("a", "past_due", 1)
    assert alert_id("a", "past_due", 1) != alert_id("a", "past_due", 2)
    long_key = dedupe_key("x" * 256, "payment_failed", 3)
    assert len(long_key) <= 256 and long_key.endswith(":payment_failed:3")


def test_time_going_backwards_never_refires_inside_cooldown() -> None:
    d = Driver()
    d.send(ev("billing", "subscription.updated", 1, status="past_due"))
    d.send(ev("billing", "invoice.paid", 1.2))
    d.send(ev("billing", "subscription.updated", 0.9, status="past_due"))  # late, earlier time
    assert _only(d, "past_due") == ["past_due"]
