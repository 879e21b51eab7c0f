"""Pure rules of the alert lifecycle: how severe an alert is, and when its condition is over.

No I/O and no clock: the store calls these with what it has read, and the unit
tests call them directly.

Severity. The scorer's rule says how serious a reason is in general (a failed
payment is critical, a renewal window is info); the account's band says how
much is at stake right now. A "critical" on an account scoring 92 is noise, so
the stored ``severity`` is the rule's severity capped by the band the alert's
score falls in: red keeps it, yellow caps it at ``warning``, green at ``info``.
The rule's own value stays in ``rule_severity``.

Resolution. The scorer publishes, per account, the score, band, components
and top drivers, but not the state of its rules. These are the signals of a
health update that say a condition is over beyond doubt (docs/alerts.md has
the table); reasons without such a signal (``nps_detractor``) stay open
until a person resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import AlertSeverity, Band, HealthUpdate

RANK = {AlertSeverity.INFO: 1, AlertSeverity.WARNING: 2, AlertSeverity.CRITICAL: 3}
_BY_RANK = {rank: severity for severity, rank in RANK.items()}
#: Highest severity an alert may have while its account is in each band.
BAND_CAP = {Band.RED: AlertSeverity.CRITICAL, Band.YELLOW: AlertSeverity.WARNING}
BAND_CAP[Band.GREEN] = AlertSeverity.INFO


@dataclass(frozen=True)
class Bands:
    """Band thresholds; keep them equal to the scorecard's ``[bands]``."""

    red_below: float = 50.0
    green_from: float = 75.0

    def of(self, score: float) -> Band:
        if score < self.red_below:
            return Band.RED
        return Band.GREEN if score >= self.green_from else Band.YELLOW


def effective_severity(rule: AlertSeverity, band: Band) -> AlertSeverity:
    """The rule's severity, capped by the account's band (module docstring)."""
    return _BY_RANK[min(RANK[rule], RANK[BAND_CAP[band]])]


def _driver(health: HealthUpdate, feature: str) -> float | None:
    for driver in health.drivers:
        if driver.feature == feature:
            return driver.contribution
    return None


def _driver_sentence(health: HealthUpdate, feature: str) -> str:
    return next((d.sentence for d in health.drivers if d.feature == feature), feature)


def cleared(reason: str, previous_score: float | None, health: HealthUpdate) -> str | None:
    """Why the condition of an alert with ``reason`` is over in ``health``, or None if it is not.

    The caller only passes health newer than the alert (event time).
    """
    score = f"{health.score:.0f}"
    green = health.band == Band.GREEN
    if reason in ("entered_red", "renewal_at_risk", "model_risk_spike"):
        return f"health back to green ({score})" if green else None
    if reason == "score_drop":
        if previous_score is None:
            return f"health back to green ({score})" if green else None
        if health.score >= previous_score:
            return f"score back to {score} (it was {previous_score:.0f} before the drop)"
        return None
    if reason in ("payment_failed", "past_due"):
        if health.components.billing >= 100.0:
            return "billing in good standing (no failed payment in 30 days, nothing past due)"
        return None
    if reason == "usage_decline":
        trend = _driver(health, "usage_trend")
        if trend is not None and trend >= 0:
            return f"usage back: {_driver_sentence(health, 'usage_trend')}"
        return None
    if reason == "inactivity":
        recency = _driver(health, "days_inactive")
        if recency is not None and recency >= 0:
            return f"active again: {_driver_sentence(health, 'days_inactive')}"
        return None
    if reason == "ticket_past_sla":
        if health.components.support >= 100.0:
            return "no open support tickets"
        return None
    return None
