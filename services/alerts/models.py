"""API shapes: what the REST API, the stream and the webhooks say about alerts.

Kept apart from the tables so the contract (docs/alerts.md) changes only on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from schemas import AlertSeverity, Band, Components, Driver, RiskAlert
from schemas._types import parse_rfc3339


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


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


SEVERITY_RANK = {AlertSeverity.INFO: 1, AlertSeverity.WARNING: 2, AlertSeverity.CRITICAL: 3}


class Alert(RiskAlert):
    """A stored alert: the RiskAlert as published, plus its triage state."""

    status: AlertStatus
    snoozed_until: datetime | None = None
    assigned_csm: str | None = Field(
        default=None, description="Effective owner: routing result, or set by /assign."
    )
    escalated_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


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
