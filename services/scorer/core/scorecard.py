"""The scorecard: every weight, threshold and rule a CS team may tune, no code.

Loaded from TOML (``services/scorer/scorecard.toml`` is the documented default)
and validated by pydantic once at start-up, so a typo fails loudly before any
event is scored. The hot path reads plain attributes only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.scorer.core.state import USAGE_DAYS

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "scorecard.toml"

Severity = Literal["info", "warning", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Strict):
    """Relative weight of each component; renormalised over components that have data."""

    usage: float = Field(default=0.35, ge=0)
    engagement: float = Field(default=0.15, ge=0)
    support: float = Field(default=0.15, ge=0)
    billing: float = Field(default=0.15, ge=0)
    sentiment: float = Field(default=0.10, ge=0)
    lifecycle: float = Field(default=0.10, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> Weights:
        if sum(self.as_dict().values()) <= 0:
            raise ValueError("at least one component weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        return {
            "usage": self.usage,
            "engagement": self.engagement,
            "support": self.support,
            "billing": self.billing,
            "sentiment": self.sentiment,
            "lifecycle": self.lifecycle,
        }


class Bands(_Strict):
    """red < red_below <= yellow < green_from <= green (Gainsight-like 50 / 75)."""

    red_below: float = Field(default=50, ge=0, le=100)
    green_from: float = Field(default=75, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.red_below > self.green_from:
            raise ValueError("bands.red_below must not exceed bands.green_from")
        return self


class SlaHours(_Strict):
    """Hours a ticket of each priority may stay open before it is past SLA."""

    low: float = Field(default=120, gt=0)
    normal: float = Field(default=48, gt=0)
    high: float = Field(default=24, gt=0)
    urgent: float = Field(default=4, gt=0)


class UsageConfig(_Strict):
    """How usage is judged: recency against the account's own rhythm, frequency, trend."""

    min_expected_gap_days: float = Field(default=3, gt=0)
    recency_zero_ratio: float = Field(default=4, gt=1)
    frequency_target_active_days: int = Field(default=10, ge=1)
    frequency_min_age_days: float = Field(default=56, ge=0)
    trend_min_active_days_28d: int = Field(default=6, ge=1)
    trend_min_history_days: float = Field(default=28, ge=7)
    recency_weight: float = Field(default=0.4, ge=0)
    frequency_weight: float = Field(default=0.2, ge=0)
    trend_weight: float = Field(default=0.4, ge=0)


class EngagementConfig(_Strict):
    target_active_users: int = Field(default=5, ge=1)
    target_features: int = Field(default=5, ge=1)


class PriorityPoints(_Strict):
    """Points per ticket of each priority."""

    low: float = Field(ge=0)
    normal: float = Field(ge=0)
    high: float = Field(ge=0)
    urgent: float = Field(ge=0)


class SupportConfig(_Strict):
    """Points taken per open ticket and per ticket past SLA, by priority."""

    open_penalty: PriorityPoints = PriorityPoints(low=2, normal=4, high=10, urgent=15)
    past_sla_penalty: PriorityPoints = PriorityPoints(low=5, normal=10, high=25, urgent=35)
    rising_trend_penalty: float = Field(default=10, ge=0)
    rising_trend_min_tickets_7d: int = Field(default=3, ge=1)


class BillingConfig(_Strict):
    payment_failure_penalty: float = Field(default=40, ge=0)
    past_due_penalty: float = Field(default=40, ge=0)
    downgrade_penalty: float = Field(default=20, ge=0)
    downgrade_memory_days: float = Field(default=90, gt=0)


class LifecycleConfig(_Strict):
    """Onboarding: a young account is judged on time to first value, not on volume."""

    onboarding_days: float = Field(default=14, gt=0)
    ttfv_target_days: float = Field(default=7, gt=0)
    ttfv_limit_days: float = Field(default=90, gt=0)


class Rule(_Strict):
    """One alert rule: fires on entering its condition, re-arms past its hysteresis.

    The cooldown applies per account and reason.
    """

    enabled: bool = True
    severity: Severity = "warning"
    threshold: float = 0
    hysteresis: float = Field(default=0, ge=0)
    cooldown_hours: float = Field(default=24, ge=0)


def _rule(severity: Severity, threshold: float, hysteresis: float, cooldown: float) -> Rule:
    return Rule(
        severity=severity, threshold=threshold, hysteresis=hysteresis, cooldown_hours=cooldown
    )


class Rules(_Strict):
    """Thresholds per reason code (see docs/scoring.md for each one's meaning and unit)."""

    entered_red: Rule = _rule("critical", 0, 5, 72)
    score_drop: Rule = _rule("warning", 20, 5, 72)
    payment_failed: Rule = _rule("critical", 1, 0, 0)
    past_due: Rule = _rule("critical", 0, 0, 72)
    usage_decline: Rule = _rule("warning", 50, 15, 168)
    inactivity: Rule = _rule("warning", 14, 0, 168)
    ticket_past_sla: Rule = _rule("critical", 0, 0, 24)
    nps_detractor: Rule = _rule("warning", 6, 0, 168)
    renewal_at_risk: Rule = _rule("critical", 60, 5, 168)
    model_risk_spike: Rule = _rule("warning", 0.7, 0.1, 168)
    renewal_window_days: float = Field(default=60, gt=0)
    inactivity_gap_multiple: float = Field(default=3, gt=0)


class Labels(_Strict):
    """Churn labels for the online model."""

    horizon_days: float = Field(default=30, gt=0)
    snapshot_interval_days: float = Field(default=7, gt=0)
    max_pending: int = Field(default=3, ge=1, le=6)


class ModelBlend(_Strict):
    """How the health score earns its mix of scorecard and churn model from recent outcomes.

    Every labelled example is scored, before the model learns it, by the
    scorecard (as it stood when the example's features were taken) and by the
    model; every ``refit_every`` labels the weight whose mixture ranked the last
    ``auc_window`` examples best (rolling ROC AUC) becomes the model's weight.
    """

    min_labels: int = Field(default=200, ge=1)
    min_class_labels: int = Field(default=20, ge=1)
    max_weight: float = Field(default=1.0, ge=0, le=1)
    weight_step: float = Field(default=0.05, gt=0, le=1)
    switch_margin: float = Field(default=0.002, ge=0, le=0.1)
    refit_every: int = Field(default=50, ge=1)
    auc_window: int = Field(default=2000, ge=10)


class Scorecard(_Strict):
    """The whole scorecard; ``version`` is stamped on every health update."""

    version: str = "default-1"
    weights: Weights = Weights()
    bands: Bands = Bands()
    sla_hours: SlaHours = SlaHours()
    usage: UsageConfig = UsageConfig()
    engagement: EngagementConfig = EngagementConfig()
    support: SupportConfig = SupportConfig()
    billing: BillingConfig = BillingConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    rules: Rules = Rules()
    labels: Labels = Labels()
    model: ModelBlend = ModelBlend()
    neutral_score: float = Field(default=75.0, ge=0, le=100)
    #: How far behind an account's newest event another event may be and still be
    #: applied. Unset: what the state keeps (the 56-day usage ring), since every
    #: fact within it can be placed by its event time.
    allowed_lateness_hours: float | None = Field(default=None, ge=0)
    publish_min_change: float = Field(default=1.0, ge=0)
    max_drivers: int = Field(default=4, ge=1, le=10)

    @property
    def lateness_hours(self) -> float:
        """The allowed lateness in effect (the explicit setting, else what the state keeps)."""
        if self.allowed_lateness_hours is not None:
            return self.allowed_lateness_hours
        return USAGE_DAYS * 24.0


def load_scorecard(path: Path | None = None) -> Scorecard:
    """Read and validate a scorecard TOML; ``None`` reads the shipped default file."""
    source = DEFAULT_PATH if path is None else path
    with open(source, "rb") as handle:
        data = tomllib.load(handle)
    return Scorecard.model_validate(data)
