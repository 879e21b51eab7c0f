"""Alert rules: reason codes that fire on *entering* a condition, with hysteresis and cooldown.

Each rule maps (features, health) to ``True`` (condition holds), ``False``
(condition clearly over: the rule re-arms) or ``None`` (inside the hysteresis
band, or no data: keep the current state). A rule fires when it goes from
inactive to active and its cooldown for this account has passed. Episodes are
counted per account and reason, so ``dedupe_key`` = account:reason:episode and
``alert_id`` (a hash of it) are the same in every replay of the same events.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from services.scorer.core.results import Alert, DriverItem, HealthResult
from services.scorer.core.scorecard import Rule, Scorecard
from services.scorer.core.state import AccountState

NEVER = -1e18

#: Which health component explains each reason best (its drivers are listed first).
REASON_COMPONENT = {
    "entered_red": "",
    "score_drop": "",
    "payment_failed": "billing",
    "past_due": "billing",
    "usage_decline": "usage",
    "inactivity": "usage",
    "ticket_past_sla": "support",
    "nps_detractor": "sentiment",
    "renewal_at_risk": "lifecycle",
    "model_risk_spike": "model",
}

PAYMENT_CLEARED = frozenset({"invoice.paid", "payment.succeeded", "charge.succeeded"})


#: Every reason, in the order rules are evaluated (and alerts of one event are listed).
REASONS = tuple(REASON_COMPONENT)


def _band(value: float, enter_below: float, exit_from: float) -> bool | None:
    """True below ``enter_below``, False at or above ``exit_from``, None in between."""
    if value < enter_below:
        return True
    if value >= exit_from:
        return False
    return None


class CompiledRules:
    """Every threshold of the scorecard's rules as plain attributes, read once per engine.

    ``conditions`` runs on every re-score; chained pydantic attribute reads
    (``sc.rules.entered_red.threshold``) cost more than the comparisons.
    """

    __slots__ = (
        "decline_clear",
        "decline_enter",
        "drop_clear",
        "drop_enter",
        "enabled",
        "failed_min",
        "gap_multiple",
        "inactive_days",
        "nps_clear",
        "nps_enter",
        "red_clear",
        "red_enter",
        "renewal_clear",
        "renewal_enter",
        "renewal_window",
        "sla_over",
        "spike_clear",
        "spike_enter",
        "trend_min_active",
        "trend_min_history",
    )

    def __init__(self, sc: Scorecard) -> None:
        r = sc.rules
        self.enabled: tuple[tuple[int, str, Rule], ...] = tuple(
            (index, reason, rule)
            for index, reason in enumerate(REASONS)
            if (rule := getattr(r, reason)).enabled
        )
        self.red_enter = sc.bands.red_below - r.entered_red.threshold
        self.red_clear = sc.bands.red_below + r.entered_red.hysteresis
        self.drop_enter = r.score_drop.threshold
        self.drop_clear = r.score_drop.threshold - r.score_drop.hysteresis
        self.failed_min = r.payment_failed.threshold
        self.trend_min_active = sc.usage.trend_min_active_days_28d
        self.trend_min_history = sc.usage.trend_min_history_days
        self.decline_enter = r.usage_decline.threshold
        self.decline_clear = r.usage_decline.threshold - r.usage_decline.hysteresis
        self.inactive_days = r.inactivity.threshold
        self.gap_multiple = r.inactivity_gap_multiple
        self.sla_over = r.ticket_past_sla.threshold
        self.nps_enter = r.nps_detractor.threshold
        self.nps_clear = r.nps_detractor.threshold + r.nps_detractor.hysteresis
        self.renewal_window = r.renewal_window_days
        self.renewal_enter = r.renewal_at_risk.threshold
        self.renewal_clear = r.renewal_at_risk.threshold + r.renewal_at_risk.hysteresis
        self.spike_enter = r.model_risk_spike.threshold
        self.spike_clear = r.model_risk_spike.threshold - r.model_risk_spike.hysteresis


def compile_rules(sc: Scorecard) -> CompiledRules:
    """The scorecard's rules, compiled once per engine (see ``CompiledRules``)."""
    return CompiledRules(sc)


def conditions(
    c: CompiledRules,
    f: dict[str, float],
    score: float,
    drop: float,
    event_name: str | None,
    model_p: float | None,
) -> tuple[bool | None, ...]:
    """Current condition of every rule, in ``REASONS`` order (tri-state: module docstring)."""
    get = f.get
    entered_red = _band(score, c.red_enter, c.red_clear)
    score_drop = True if drop >= c.drop_enter else False if drop < c.drop_clear else None
    failures = get("payment_failures_30d", 0.0)
    payment_failed: bool | None
    if event_name == "payment.failed" and failures >= c.failed_min:
        payment_failed = True
    elif event_name in PAYMENT_CLEARED or failures == 0:
        payment_failed = False
    else:
        payment_failed = None
    trend = get("usage_trend")
    usage_decline: bool | None = None
    if (
        trend is not None
        and get("active_days_28d", 0.0) >= c.trend_min_active
        and get("usage_history_days", 0.0) >= c.trend_min_history
    ):
        decline = -100.0 * trend
        usage_decline = (
            True if decline >= c.decline_enter else False if decline < c.decline_clear else None
        )
    inactive = get("days_inactive")
    inactivity: bool | None = None
    if inactive is not None:
        inactivity = inactive >= max(c.inactive_days, c.gap_multiple * get("typical_gap_days", 0.0))
    nps = get("nps")
    nps_detractor = (
        None
        if nps is None
        else True
        if nps <= c.nps_enter
        else False
        if nps > c.nps_clear
        else None
    )
    days = get("days_to_renewal")
    if days is None or days < 0 or days > c.renewal_window or get("canceled"):
        renewal_at_risk: bool | None = False
    else:
        renewal_at_risk = _band(score, c.renewal_enter, c.renewal_clear)
    model_risk_spike = (
        False
        if model_p is None
        else True
        if model_p >= c.spike_enter
        else False
        if model_p < c.spike_clear
        else None
    )
    return (
        entered_red,
        score_drop,
        payment_failed,
        bool(get("past_due")),
        usage_decline,
        inactivity,
        get("over_sla_high_urgent", 0.0) > c.sla_over,
        nps_detractor,
        renewal_at_risk,
        model_risk_spike,
    )


def dedupe_key(account_id: str, reason: str, episode: int) -> str:
    """account:reason:episode (a long account id is hashed to stay within 256 characters)."""
    account = account_id
    if len(account) > 200:
        account = "h" + hashlib.blake2b(account.encode(), digest_size=16).hexdigest()
    return f"{account}:{reason}:{episode}"


def alert_id(account_id: str, reason: str, episode: int) -> str:
    raw = f"{account_id}\x1f{reason}\x1f{episode}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _message(
    reason: str, f: dict[str, float], score_value: float, churn: float, drop: float
) -> str:
    score = f"{score_value:.0f}"
    if reason == "entered_red":
        return f"health entered red ({score})"
    if reason == "score_drop":
        return f"health dropped {drop:.0f} points in 7 days (now {score})"
    if reason == "payment_failed":
        n = int(f.get("payment_failures_30d", 1))
        return f"payment failed ({n} in the last 30 days)"
    if reason == "past_due":
        days = round(f.get("days_past_due", 0.0))
        if days < 1:
            return "invoice past due since today"
        return f"invoice past due for {days} day{'' if days == 1 else 's'}"
    if reason == "usage_decline":
        return f"usage down {-100 * f.get('usage_trend', 0.0):.0f}% vs last 4 weeks"
    if reason == "inactivity":
        return f"no product usage for {f.get('days_inactive', 0.0):.0f} days"
    if reason == "ticket_past_sla":
        n = int(f.get("over_sla_high_urgent", 0.0))
        return f"{n} high-priority ticket{'s' if n != 1 else ''} past SLA"
    if reason == "nps_detractor":
        return f"NPS detractor (score {f.get('nps', 0.0):g})"
    if reason == "renewal_at_risk":
        return f"renewal in {f.get('days_to_renewal', 0.0):.0f} days with health {score}"
    return f"churn model risk {churn:.0%}"


def _drivers(reason: str, health: HealthResult) -> list[DriverItem]:
    component = REASON_COMPONENT[reason]
    if not component:
        return list(health.drivers)
    return sorted(health.drivers, key=lambda d: d.component != component)


class ScoredHealth(Protocol):
    """What rules read from a score: the numbers now, the full result only to alert."""

    score: float
    churn: float
    model_p: float | None

    def health(self) -> HealthResult: ...


def evaluate(
    state: AccountState,
    compiled: CompiledRules,
    now: float,
    f: dict[str, float],
    scored: ScoredHealth,
    drop: float,
    previous_score: float | None,
    event_name: str | None,
) -> list[Alert]:
    """Advance every rule's episode state and return the alerts that fire now.

    The full ``HealthResult`` (drivers) is built only when an alert actually fires.
    """
    fired: list[Alert] = []
    condition_of = conditions(compiled, f, scored.score, drop, event_name, scored.model_p)
    alerts = state.alerts
    for index, reason, rule in compiled.enabled:
        condition = condition_of[index]
        if condition is None:
            continue
        entry = alerts.get(reason)
        if not condition:
            if entry is not None and entry[0] > 0:
                entry[0] = 0.0
            continue
        active = entry is not None and entry[0] > 0
        # An event-triggered rule (payment_failed) starts a new episode on every trigger.
        retrigger = reason == "payment_failed" and event_name == "payment.failed"
        if active and not retrigger:
            continue
        if entry is None:
            entry = alerts[reason] = [0.0, 0.0, NEVER]
        entry[0] = 1.0
        if now - entry[2] < rule.cooldown_hours * 3600 or now < entry[2]:
            continue  # still cooling down from the last alert of this reason
        entry[1] += 1
        entry[2] = now
        episode = int(entry[1])
        health = scored.health()
        fired.append(
            Alert(
                alert_id=alert_id(state.account_id, reason, episode),
                dedupe_key=dedupe_key(state.account_id, reason, episode),
                account_id=state.account_id,
                reason=reason,
                severity=rule.severity,
                score=scored.score,
                previous_score=previous_score,
                drivers=_drivers(reason, health),
                occurred_at=now,
                csm=state.csm,
                message=_message(reason, f, scored.score, scored.churn, drop),
            )
        )
    return fired
