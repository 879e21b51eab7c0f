"""Risk alert: the value published on ``risk-alerts`` and stored by the alerts service."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas._types import Identifier, Timestamp
from schemas.health import Driver


class AlertReason(StrEnum):
    ENTERED_RED = "entered_red"
    SCORE_DROP = "score_drop"
    PAYMENT_FAILED = "payment_failed"
    PAST_DUE = "past_due"
    USAGE_DECLINE = "usage_decline"
    INACTIVITY = "inactivity"
    TICKET_PAST_SLA = "ticket_past_sla"
    NPS_DETRACTOR = "nps_detractor"
    RENEWAL_AT_RISK = "renewal_at_risk"
    MODEL_RISK_SPIKE = "model_risk_spike"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class RiskAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: Identifier = Field(description="Unique and stable: a replay yields the same id.")
    dedupe_key: Identifier = Field(
        description="account + reason (+ episode): redeliveries with this key are one alert."
    )
    account_id: Identifier
    reason: AlertReason
    severity: AlertSeverity
    score: float = Field(ge=0, le=100)
    previous_score: float | None = Field(default=None, ge=0, le=100)
    drivers: list[Driver] = Field(default_factory=list)
    occurred_at: Timestamp = Field(description="Event time at which the rule fired.")
    csm: str | None = Field(default=None, description="Owner, when known.")
    message: str = Field(default="", description="One-line summary for humans.")
