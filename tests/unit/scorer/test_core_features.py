"""Every feature and component, computed from state at event time."""

from __future__ import annotations

import pytest
from core_helpers import DAY, T0, Driver, ev, usage

from services.scorer.core import Scorecard


def test_usage_trend_7d_vs_28d_and_sentence() -> None:
    d = Driver()
    d.daily_usage(0, 27, per_day=3)
    d.daily_usage(28, 34, per_day=1)
    f = d.features(35.2)  # windows hold complete days: days 28-34 vs 7-34
    assert f["usage_7d"] == 7 and f["usage_28d"] == 21 * 3 + 7
    assert f["usage_trend"] == pytest.approx((7 / 7) / (70 / 28) - 1)  # -60 %
    health = d.engine.score(d.state, T0 + 35.2 * DAY)  # type: ignore[arg-type]
    sentences = [driver.sentence for driver in health.drivers]
    assert "usage down 60% vs last 4 weeks" in sentences
    trend = next(x for x in health.drivers if x.feature == "usage_trend")
    assert trend.contribution < 0 and trend.component == "usage"


def test_days_inactive_gap_and_recency_ratio() -> None:
    d = Driver()
    for day in (0, 30, 60):
        d.send(usage(day))
    f = d.features(75)
    assert f["days_inactive"] == pytest.approx(15)
    assert f["typical_gap_days"] == pytest.approx(30)
    assert f["recency_ratio"] == pytest.approx(0.5)
    assert f["active_days_total"] == 3


@pytest.mark.parametrize("inactive_days", [29, 40, 55, 70])
def test_no_active_days_in_28d_after_a_long_silence(inactive_days: int) -> None:
    """Regression: the 28-day window once wrapped around the ring (a negative slice end)
    and counted active days from long ago for an account silent for 4-8 weeks."""
    d = Driver()
    d.daily_usage(0, 5, per_day=2)
    f = d.features(5 + inactive_days)
    assert f["active_days_28d"] == 0
    assert f["usage_28d"] == 0 and f["usage_7d"] == 0
    assert f["active_days_total"] == 6


def test_active_users_and_feature_breadth_use_the_last_4_weeks() -> None:
    d = Driver()
    d.send(usage(0, user_id="old", feature="export"))
    d.send(usage(30, user_id="a", feature="search"), usage(31, user_id="b", feature="search"))
    f = d.features(31)
    assert f["active_users_28d"] == 2
    assert f["feature_breadth_28d"] == 1


def test_open_and_over_sla_tickets_by_priority_and_trend() -> None:
    d = Driver()
    d.send(ev("ticket", "ticket.opened", 0, ticket_id="T1", priority="urgent"))
    d.send(ev("ticket", "ticket.opened", 0.1, ticket_id="T2", priority="high"))
    d.send(ev("ticket", "ticket.opened", 0.1, ticket_id="T3"))
    f = d.features(0.1 + 5 / 24)  # urgent is 7.4 h old (SLA 4 h), high 5 h (SLA 24 h)
    assert f["open_tickets"] == 3 and f["open_urgent"] == 1 and f["open_normal"] == 1
    assert f["over_sla_urgent"] == 1 and "over_sla_high" not in f
    assert f["over_sla_high_urgent"] == 1 and f["over_sla_tickets"] == 1
    d.send(ev("ticket", "ticket.updated", 0.4, ticket_id="T1", status="solved"))
    d.send(ev("ticket", "ticket.resolved", 0.5, ticket_id="T2"))
    f = d.features(0.5)
    assert f["open_tickets"] == 1 and f["over_sla_high_urgent"] == 0
    assert f["tickets_7d"] == 3 and f["ticket_trend"] == pytest.approx(3.0)


def test_latest_csat_and_nps_by_event_time() -> None:
    d = Driver()
    d.send(ev("feedback", "nps.response", 5, score=9))
    d.send(ev("feedback", "nps.response", 4.5, score=2))  # older, within allowed lateness
    d.send(ev("feedback", "csat.response", 4.8, score=2))
    f = d.features(5)
    assert f["nps"] == 9  # the older response arrived later but does not win
    assert f["csat"] == 2


def test_payment_failures_30d_past_due_downgrade_and_renewal() -> None:
    d = Driver()
    d.send(ev("account", "account.created", 0, mrr=1000, renewal_date="2024-07-01"))
    d.send(ev("billing", "payment.failed", 1), ev("billing", "payment.failed", 20))
    d.send(ev("billing", "subscription.updated", 21, status="past_due", mrr=600, plan="basic"))
    f = d.features(35)
    assert f["payment_failures_30d"] == 1
    assert f["past_due"] == 1 and f["days_past_due"] == pytest.approx(14)
    assert f["downgrade"] == 1 and f["mrr_change_pct"] == pytest.approx(-40)
    assert f["days_to_renewal"] == pytest.approx(61 - 35)
    d.send(ev("billing", "invoice.paid", 36))
    f = d.features(120)
    assert f["past_due"] == 0 and f["downgrade"] == 0 and f["payment_failures_30d"] == 0


def test_onboarding_age_and_time_to_first_value() -> None:
    d = Driver()
    d.send(ev("account", "account.created", 0))
    assert "ttfv_days" not in d.features(2)
    d.send(usage(3))
    f = d.features(10)
    assert f["ttfv_days"] == pytest.approx(3) and f["account_age_days"] == pytest.approx(10)


# ------------------------------------------------------------------ components
def test_usage_only_account_is_scored_on_usage_alone() -> None:
    d = Driver()
    for day in range(31):
        d.send(usage(day + 0.2), usage(day + 0.4))
    health = d.engine.score(d.state, T0 + 30.5 * DAY)  # type: ignore[arg-type]
    assert health.score == pytest.approx(health.components["usage"], abs=0.01)
    neutral = Scorecard().neutral_score
    for name in ("support", "billing", "sentiment", "lifecycle", "engagement"):
        assert health.components[name] == neutral  # reported neutral, excluded from the mean
    assert health.band == "green"


def test_sparse_buyer_recency_and_frequency_drive_usage() -> None:
    """CDNOW-like: an order every ~6 weeks is healthy; 6 months of silence is not."""
    d = Driver()
    for day in range(0, 360, 45):
        d.send(usage(day, name="order.placed", amount=30.0, quantity=2))
    right_after = d.engine.score(d.state, T0 + 316 * DAY)  # type: ignore[arg-type]
    assert right_after.band == "green"
    later = d.engine.score(d.state, T0 + (315 + 180) * DAY)  # type: ignore[arg-type]
    assert later.band == "red"
    assert later.drivers[0].feature == "days_inactive"
    assert later.drivers[0].sentence == "last active 180 days ago (usually every 45 days)"
    one_timer = Driver()
    one_timer.send(usage(0, name="order.placed"))
    # Same silence, but a one-time buyer also scores low on frequency.
    at_60 = one_timer.engine.score(one_timer.state, T0 + 60 * DAY)  # type: ignore[arg-type]
    assert at_60.features["active_days_total"] == 1
    assert "active_days_total" in [x.feature for x in at_60.drivers]


def test_week_one_account_with_little_usage_is_fine_but_month_four_is_not() -> None:
    young = Driver()
    young.send(ev("account", "account.created", 0), usage(1))
    assert young.engine.score(young.state, T0 + 5 * DAY).band == "green"  # type: ignore[arg-type]
    silent = Driver()
    silent.send(ev("account", "account.created", 0))
    early = silent.engine.score(silent.state, T0 + 5 * DAY)  # type: ignore[arg-type]
    late = silent.engine.score(silent.state, T0 + 120 * DAY)  # type: ignore[arg-type]
    assert early.band != "red" and early.components["lifecycle"] == 80
    assert late.band == "red" and late.components["lifecycle"] == 0
    assert late.drivers[0].sentence == "no product usage 120 days after signup"


def test_support_billing_and_sentiment_components() -> None:
    d = Driver()
    d.daily_usage(0, 10)
    base = d.engine.score(d.state, T0 + 10.5 * DAY)  # type: ignore[arg-type]
    d.send(ev("ticket", "ticket.opened", 10.5, ticket_id="T1", priority="urgent"))
    h = d.engine.score(d.state, T0 + 11 * DAY)  # type: ignore[arg-type]
    assert h.components["support"] == 100 - 35  # past SLA penalty replaces the open penalty
    assert "1 urgent ticket past SLA" in [x.sentence for x in h.drivers]
    d.send(ev("feedback", "nps.response", 11, score=3))
    d.send(ev("billing", "payment.failed", 11, amount=10.0))
    h = d.engine.score(d.state, T0 + 11 * DAY)  # type: ignore[arg-type]
    assert h.components["sentiment"] == 30 and h.components["billing"] == 60
    assert h.score < base.score
    d.send(ev("billing", "subscription.canceled", 11.5))
    assert d.engine.score(d.state, T0 + 12 * DAY).components["billing"] == 0  # type: ignore[arg-type]


def test_engagement_uses_seats_when_known() -> None:
    d = Driver()
    d.send(ev("account", "account.updated", 0, seats=10))
    d.daily_usage(0, 3, per_day=4, users=4)
    h = d.engine.score(d.state, T0 + 3.5 * DAY)  # type: ignore[arg-type]
    assert h.features["active_user_ratio"] == pytest.approx(0.4)
    assert h.components["engagement"] == pytest.approx((40 + 80) / 2)  # 4/10 seats, 4/5 features
    assert "4 active users of 10 seats in the last 4 weeks" in [x.sentence for x in h.drivers]


def test_drivers_are_signed_and_ranked_by_size() -> None:
    d = Driver()
    d.daily_usage(0, 30)
    d.send(ev("billing", "payment.failed", 30.5), ev("billing", "payment.failed", 30.6))
    h = d.engine.score(d.state, T0 + 30.7 * DAY)  # type: ignore[arg-type]
    sizes = [abs(x.contribution) for x in h.drivers]
    assert sizes == sorted(sizes, reverse=True)
    top = h.drivers[0]
    assert top.feature == "payment_failures_30d" and top.contribution < 0
    assert top.sentence == "2 payment failures in the last 30 days"
    assert any(x.contribution > 0 for x in h.drivers)


def test_sentences_say_what_happened_not_zero_days() -> None:
    """ "past due for 0 days" and "first value 0 days after signup" read as arithmetic."""
    from services.scorer.core import components as comp
    from services.scorer.core import rules
    from services.scorer.core.scorecard import Scorecard

    sc = Scorecard()

    def sentences(result: comp.ComponentResult) -> list[str]:
        assert result is not None
        return [comp.text_of(text) for _, _, text in result[1]]

    today = {"has_billing": 1.0, "days_past_due": 0.2, "past_due": 1.0}
    assert "invoice past due since today" in sentences(comp.billing(today, sc))
    later = {"has_billing": 1.0, "days_past_due": 3.0, "past_due": 1.0}
    assert "invoice past due for 3 days" in sentences(comp.billing(later, sc))
    assert rules._message("past_due", today, 40.0, 0.1, 0.0) == "invoice past due since today"
    assert rules._message("past_due", {"days_past_due": 1.0}, 40.0, 0.1, 0.0) == (
        "invoice past due for 1 day"
    )
    same_day = sentences(
        comp.lifecycle({"has_created": 1.0, "ttfv_days": 0.0, "account_age_days": 3.0}, sc)
    )
    assert "first value on the day of signup" in same_day
