"""API shapes: what the REST API, the stream and the webhooks say about alerts.

Kept apart from the tables so the contract (docs/alerts.md) changes only on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from healthstream.contract import parse_rfc3339
from schemas import AlertSeverity, Band, Components, Driver, RiskAlert


def _as_utc(value: datetime) -> datetime:
    # A zone-shifted year-1 or year-9999 instant has no UTC representation.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None


#: RFC 3339 with a zone, normalised to UTC (what the store compares and returns).
UtcTimestamp = Annotated[datetime, BeforeValidator(parse_rfc3339), AfterValidator(_as_utc)]


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class AccountSort(StrEnum):
    """Orders of ``GET /v1/accounts`` (the store's ``ACCOUNT_SORTS``)."""

    RISK = "risk"
    SCORE = "score"
    MRR_AT_RISK = "mrr_at_risk"
    RENEWAL = "renewal"
    LAST_CHANGE = "last_change"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


SEVERITY_RANK = {AlertSeverity.INFO: 1, AlertSeverity.WARNING: 2, AlertSeverity.CRITICAL: 3}


class Alert(RiskAlert):
    """A stored alert: the RiskAlert as published, plus its triage state.

    ``severity`` is the rule's severity capped by the account's band at the
    alert (services/alerts/conditions.py); ``rule_severity`` is the scorer's.
    """

    rule_severity: AlertSeverity | None = Field(
        default=None, description="Severity of the scorer's rule, before the band's cap."
    )
    status: AlertStatus
    snoozed_until: datetime | None = None
    assigned_csm: str | None = Field(
        default=None, description="Effective owner: routing result, or set by /assign."
    )
    escalated_at: datetime | None = None
    backfilled: bool = Field(
        default=False,
        description="Fired for an event older than the backfill age when it arrived: "
        "stored and listed, never delivered or escalated.",
    )
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="after")
    def _rule_severity_defaults_to_severity(self) -> Alert:
        if self.rule_severity is None:
            self.rule_severity = self.severity
        return self


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class AuditEntry(BaseModel):
    id: int
    alert_id: str
    action: str = Field(
        description="created, acknowledged, snoozed, unsnoozed, resolved, assigned, escalated"
    )
    actor: str
    at: datetime
    details: dict[str, Any]


class AuditLog(BaseModel):
    items: list[AuditEntry]


class Health(BaseModel):
    score: float
    band: Band
    churn_probability: float
    as_of: datetime
    components: Components
    drivers: list[Driver]
    model_version: str


class HistoryPoint(BaseModel):
    as_of: datetime
    score: float
    band: Band


class Account(BaseModel):
    account_id: str
    csm: str | None
    plan: str | None
    segment: str | None
    mrr: float | None
    renewal_date: str | None = Field(
        default=None, description="Renewal date from the latest account event, as sent."
    )
    mrr_at_risk: float | None = Field(
        default=None, description="mrr x churn_probability of the current health (null if unknown)."
    )
    last_change: datetime | None = Field(
        default=None, description="Event time of the current health, or of the newest alert."
    )
    health: Health | None
    history: list[HistoryPoint] = Field(description="Latest scores, oldest first (sparkline).")
    max_severity: AlertSeverity | None = Field(description="Most severe unresolved alert.")
    alerts: list[Alert]


class AccountList(BaseModel):
    items: list[Account]


class Delivery(BaseModel):
    id: int
    alert_id: str
    account_id: str
    kind: str = Field(description="alert or escalation")
    destination: str
    format: str = Field(description="slack or json")
    state: DeliveryState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class Me(BaseModel):
    """Who the presented API key is: what the page shows and which actions it offers."""

    actor: str = Field(description="Name recorded in the audit log for this key's actions.")
    csm: str | None = Field(description="CSM the key is tied to (`@csm` in the key), or null.")
    scopes: list[str] = Field(description="alerts:read, alerts:write, admin (sorted).")
    can_write: bool = Field(description="May acknowledge, snooze, resolve and assign.")
    admin: bool = Field(description="Sees every CSM's accounts and the deliveries.")
    sees_all_accounts: bool = Field(
        description="false: only the accounts and alerts of `csm` are visible."
    )
    assignable: list[str] = Field(
        default_factory=list,
        description="CSMs /assign accepts (sorted); empty for a key that may not write.",
    )
    leads: list[str] = Field(
        default_factory=list,
        description="Teams the key's CSM leads, sub-teams included (routing config order).",
    )
    team: list[str] = Field(
        default_factory=list,
        description="Owners besides `csm` seen with ?view=team (the default): the led tree.",
    )


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


class SnoozeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: UtcTimestamp = Field(description="RFC 3339 with zone, in the future.")
    note: str | None = Field(default=None, max_length=2000)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000)


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csm: str = Field(min_length=1, max_length=256)
