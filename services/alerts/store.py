"""All reads and writes of the alert store. Callers own the transaction.

Idempotency lives here: an alert whose ``alert_id`` or ``dedupe_key`` is already
stored is a redelivery, and produces no row, no audit entry and no notification.
Notifications are outbox rows written in the same transaction as their alert.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, case, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from schemas import AlertSeverity, Event, HealthUpdate, RiskAlert
from services.alerts.conditions import Bands, cleared, effective_severity
from services.alerts.db import (
    AccountRow,
    AlertRow,
    AuditRow,
    Base,
    HealthPointRow,
    OutboxRow,
    utcnow,
)
from services.alerts.models import (
    Account,
    Alert,
    AlertStatus,
    AuditEntry,
    Delivery,
    DeliveryState,
    Health,
    HistoryPoint,
)
from services.alerts.payloads import alert_link, json_payload, slack_payload
from services.alerts.routing import RoutingConfig, Webhook

SYSTEM = "system"
ACCOUNT_EVENT_NAMES = {"account.created", "account.updated"}


class NotFound(LookupError):
    """Unknown, or not visible to the caller (both answer 404: no existence leak)."""


class Conflict(ValueError):
    """The action does not apply to the alert's current state."""


@dataclass(frozen=True)
class Viewer:
    """Who is asking, and whose alerts and accounts they may see.

    ``csm`` None sees everything (an admin). Otherwise the viewer sees the
    owners in :attr:`owners`: the CSM, plus ``team`` (the owners of the teams
    a lead leads, with their sub-teams) when they asked for the team view.
    """

    actor: str
    csm: str | None = None
    team: frozenset[str] = frozenset()

    @property
    def owners(self) -> frozenset[str] | None:
        """Every owner visible; None means no restriction."""
        if self.csm is None:
            return None
        return self.team | {self.csm}

    def sees(self, owner: str | None) -> bool:
        owners = self.owners
        return owners is None or owner in owners


# ---------------------------------------------------------------- conversion


def to_alert(row: AlertRow) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": row.alert_id,
            "dedupe_key": row.dedupe_key,
            "account_id": row.account_id,
            "reason": row.reason,
            "severity": row.severity,
            "rule_severity": row.rule_severity or row.severity,
            "score": row.score,
            "previous_score": row.previous_score,
            "drivers": row.drivers or [],
            "occurred_at": row.occurred_at,
            "csm": row.csm,
            "message": row.message,
            "status": row.status,
            "snoozed_until": row.snoozed_until,
            "assigned_csm": row.assigned_csm,
            "escalated_at": row.escalated_at,
            "backfilled": bool(row.backfilled),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def to_delivery(row: OutboxRow) -> Delivery:
    return Delivery.model_validate(row, from_attributes=True)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


#: Row ids and sequence numbers are 64-bit integers in both databases.
_MAX_ID = 2**63 - 1


def _row_id(text: str) -> int:
    value = int(text)
    if not 0 <= value <= _MAX_ID:
        raise ValueError("out of range")
    return value


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return _row_id(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not a value returned as next_cursor") from None


def encode_alert_cursor(occurred_at: datetime, seq: int) -> str:
    """Position in the (occurred_at desc, seq desc) order: stable while alerts arrive."""
    text = f"{occurred_at.astimezone(UTC).isoformat()}|{seq}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_alert_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, _, seq = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment.astimezone(UTC), _row_id(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise ValueError("cursor is not a value returned as next_cursor") from None


# ---------------------------------------------------------------- ingest


def dialect_insert(session: AsyncSession, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database.

    Both supported databases speak the same upsert (SQLite >= 3.24, PostgreSQL
    >= 9.5); SQLAlchemy only needs to be told which dialect's construct to build.
    """
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql_insert(table)
    if name == "sqlite":
        return sqlite_insert(table)
    raise NotImplementedError(f"no upsert for the {name} dialect")


async def ensure_accounts(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[str, AccountRow]:
    """The account rows of ``account_ids``, creating the missing ones.

    Creation is ``INSERT ... ON CONFLICT DO NOTHING`` because the health writer
    creates accounts too, in its own transaction: a plain INSERT would turn that
    race into an integrity error (and a dead-lettered alert).
    """
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    found = {
        row.account_id: row
        for row in await session.scalars(select(AccountRow).where(AccountRow.account_id.in_(ids)))
    }
    missing = [account_id for account_id in ids if account_id not in found]
    if missing:
        now = utcnow()
        insert = dialect_insert(
            session, Base.metadata.tables[AccountRow.__tablename__]
        ).on_conflict_do_nothing(index_elements=["account_id"])
        await session.execute(
            insert,
            [{"account_id": a, "csm_source": "routing", "updated_at": now} for a in missing],
        )
        for row in await session.scalars(
            select(AccountRow).where(AccountRow.account_id.in_(missing))
        ):
            found[row.account_id] = row
    return found


def _outbox_rows(alert: Alert, hooks: list[Webhook], kind: str, public_url: str) -> list[OutboxRow]:
    link = alert_link(public_url, alert)
    now = utcnow()
    rows = []
    for hook in hooks:
        payload = (
            slack_payload(alert, link, kind)
            if hook.format == "slack"
            else json_payload(alert, link, kind)
        )
        rows.append(
            OutboxRow(
                alert_id=alert.alert_id,
                account_id=alert.account_id,
                reason=alert.reason.value,
                kind=kind,
                destination=hook.name,
                url=hook.url,
                format=hook.format,
                payload=payload,
                event_time=alert.occurred_at,
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    return rows


async def _fresh(session: AsyncSession, alerts: Sequence[RiskAlert]) -> list[bool]:
    """Which alerts are new: neither their id nor their dedupe key is stored or came earlier."""
    known = await session.execute(
        select(AlertRow.alert_id, AlertRow.dedupe_key).where(
            or_(
                AlertRow.alert_id.in_({a.alert_id for a in alerts}),
                AlertRow.dedupe_key.in_({a.dedupe_key for a in alerts}),
            )
        )
    )
    ids: set[str] = set()
    keys: set[str] = set()
    for alert_id, dedupe_key in known:
        ids.add(alert_id)
        keys.add(dedupe_key)
    fresh = []
    for alert in alerts:
        new = alert.alert_id not in ids and alert.dedupe_key not in keys
        fresh.append(new)
        ids.add(alert.alert_id)
        keys.add(alert.dedupe_key)
    return fresh


async def store_alerts(
    session: AsyncSession,
    alerts: Sequence[RiskAlert],
    routing: RoutingConfig,
    public_url: str,
    bands: Bands | None = None,
    backfill_after: timedelta | None = None,
) -> list[AlertRow | None]:
    """Store new alerts with their audit entries and outbox rows, in the given order.

    An alert whose event time is more than ``backfill_after`` before now fired for
    history that was sent late (a backfill, a source catching up): it is stored,
    listed and counted like any other, marked ``backfilled``, but gets no outbox
    rows and is never escalated, so nobody is paged about what is long over.

    Returns one entry per alert: its row, or None when it is a redelivery (its
    ``alert_id`` or ``dedupe_key`` is stored, or appeared earlier in ``alerts``).
    A handful of statements per call whatever the number of alerts, so a
    consumer batch costs about as much as a single alert.
    """
    if not alerts:
        return []
    bands = bands or Bands()
    fresh = await _fresh(session, alerts)
    accounts = await ensure_accounts(
        session, (a.account_id for a, new in zip(alerts, fresh, strict=True) if new)
    )
    now = utcnow()
    result: list[AlertRow | None] = []
    for alert, new in zip(alerts, fresh, strict=True):
        if not new:
            result.append(None)
            continue
        account = accounts[alert.account_id]
        owner = alert.csm or account.csm
        if owner is None:
            owner = routing.owner_for(account.segment, account.plan, account.mrr)
        if account.csm is None:
            account.csm = owner
        row = AlertRow(
            alert_id=alert.alert_id,
            dedupe_key=alert.dedupe_key,
            account_id=alert.account_id,
            reason=alert.reason.value,
            severity=effective_severity(alert.severity, bands.of(alert.score)).value,
            rule_severity=alert.severity.value,
            score=alert.score,
            previous_score=alert.previous_score,
            drivers=[driver.model_dump(mode="json") for driver in alert.drivers],
            occurred_at=alert.occurred_at,
            csm=alert.csm,
            message=alert.message,
            status=AlertStatus.OPEN.value,
            assigned_csm=owner,
            created_at=now,
            updated_at=now,
        )
        row.backfilled = backfill_after is not None and alert.occurred_at < now - backfill_after
        session.add(row)
        details = {"backfilled": True} if row.backfilled else {}
        session.add(
            AuditRow(
                alert_id=alert.alert_id, action="created", actor=SYSTEM, at=now, details=details
            )
        )
        if not row.backfilled:
            stored = to_alert(row)
            session.add_all(_outbox_rows(stored, routing.webhooks_for(owner), "alert", public_url))
        result.append(row)
        _resolve_if_already_cleared(session, row, account)
    await session.flush()
    return result


def _resolve_if_already_cleared(session: AsyncSession, row: AlertRow, account: AccountRow) -> None:
    """An alert that arrives after health showing its condition over is resolved at once.

    The two consumers run independently, so the update that clears a condition
    may be stored before the alert it clears; without this the alert would stay
    open until the account's next update. It is still delivered: it did fire.
    """
    if account.health is None or account.health_as_of is None:
        return
    if account.health_as_of <= row.occurred_at:
        return
    health = HealthUpdate.model_validate(account.health)
    cause = cleared(row.reason, row.previous_score, health)
    if cause is not None:
        _auto_resolve(session, row, health, cause)


def _auto_resolve(session: AsyncSession, row: AlertRow, health: HealthUpdate, cause: str) -> None:
    row.status = AlertStatus.RESOLVED.value
    row.snoozed_until = None
    details = {
        "cause": cause,
        "auto": True,
        "as_of": health.as_of.isoformat(),
        "score": health.score,
        "band": health.band.value,
    }
    session.add(_audit(row, "resolved", SYSTEM, details))


async def store_alert(
    session: AsyncSession,
    alert: RiskAlert,
    routing: RoutingConfig,
    public_url: str,
    bands: Bands | None = None,
    backfill_after: timedelta | None = None,
) -> AlertRow | None:
    """Store one alert (see :func:`store_alerts`); None when it is a redelivery."""
    return (await store_alerts(session, [alert], routing, public_url, bands, backfill_after))[0]


async def resolve_cleared(session: AsyncSession, updates: Sequence[HealthUpdate]) -> list[AlertRow]:
    """Resolve the unresolved alerts whose condition ``updates`` show to be over.

    Only an update that is its account's current health (a late or replayed one
    never resolves anything) and newer than the alert (event time) counts. The
    resolution is audited as ``resolved`` by ``system`` with the cause in words
    and the health that showed it. One query whatever the number of updates.
    """
    latest: dict[str, HealthUpdate] = {}
    for update in updates:
        current = latest.get(update.account_id)
        if current is None or update.as_of >= current.as_of:
            latest[update.account_id] = update
    if not latest:
        return []
    rows = await session.execute(
        select(AlertRow, AccountRow.health_as_of)
        .join(AccountRow, AccountRow.account_id == AlertRow.account_id)
        .where(
            AlertRow.account_id.in_(sorted(latest)),
            AlertRow.status != AlertStatus.RESOLVED.value,
        )
        .order_by(AlertRow.seq)
    )
    resolved: list[AlertRow] = []
    for row, current_as_of in rows:
        health = latest[row.account_id]
        if current_as_of is not None and health.as_of < current_as_of:
            continue
        if health.as_of <= row.occurred_at:
            continue
        cause = cleared(row.reason, row.previous_score, health)
        if cause is None:
            continue
        _auto_resolve(session, row, health, cause)
        resolved.append(row)
    await session.flush()
    return resolved


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


async def store_account_events(
    session: AsyncSession, events: Sequence[Event], routing: RoutingConfig
) -> list[AlertRow]:
    """Owner, plan, segment and MRR from ``account.created`` / ``account.updated``, in order.

    When the owner changes, the account's unresolved alerts that were routed to
    the previous owner follow the account (returned, for the stream); alerts a
    person assigned elsewhere, or that carried their own ``csm``, stay put.
    All accounts are loaded (and missing ones created) with one query and the
    changes flushed together: a burst of account events (a new customer base
    being imported) costs a few statements, not a few per event.
    """
    relevant = [event for event in events if event.name in ACCOUNT_EVENT_NAMES]
    if not relevant:
        return []
    accounts = await ensure_accounts(session, (event.account_id for event in relevant))
    now = utcnow()
    moved: list[AlertRow] = []
    for event in relevant:
        account = accounts[event.account_id]
        previous_owner = account.csm
        props = event.properties
        if isinstance(props.get("plan"), str):
            account.plan = props["plan"]
        if isinstance(props.get("segment"), str):
            account.segment = props["segment"]
        mrr = _number(props.get("mrr"))
        if mrr is not None:
            account.mrr = mrr
        renewal = props.get("renewal_date")
        if isinstance(renewal, str) and 0 < len(renewal) <= 64:
            account.renewal_date = renewal
        csm = props.get("csm")
        if isinstance(csm, str) and csm:
            account.csm = csm
            account.csm_source = "event"
        elif account.csm_source != "event":
            account.csm = routing.owner_for(account.segment, account.plan, account.mrr)
        account.updated_at = now
        if previous_owner is not None and account.csm != previous_owner:
            followers = list(
                await session.scalars(
                    select(AlertRow).where(
                        AlertRow.account_id == event.account_id,
                        AlertRow.status != AlertStatus.RESOLVED.value,
                        AlertRow.assigned_csm == previous_owner,
                        AlertRow.csm.is_(None),
                    )
                )
            )
            for row in followers:
                row.assigned_csm = account.csm
                details = {"from": previous_owner, "to": account.csm, "cause": event.event_id}
                session.add(_audit(row, "assigned", SYSTEM, details))
            moved.extend(row for row in followers if row not in moved)
    await session.flush()
    return moved


async def store_account_event(
    session: AsyncSession, event: Event, routing: RoutingConfig
) -> list[AlertRow]:
    """One account event (see :func:`store_account_events`)."""
    return await store_account_events(session, [event], routing)


# ---------------------------------------------------------------- reads


def _visible(viewer: Viewer) -> Any:
    owners = viewer.owners
    return True if owners is None else AlertRow.assigned_csm.in_(sorted(owners))


async def get_alert_row(session: AsyncSession, alert_id: str, viewer: Viewer) -> AlertRow:
    row = await session.scalar(
        select(AlertRow).where(AlertRow.alert_id == alert_id, _visible(viewer))
    )
    if row is None:
        raise NotFound(f"alert {alert_id!r} not found")
    return row


@dataclass(frozen=True)
class AlertFilter:
    status: list[str] | None = None
    severity: list[str] | None = None
    reason: list[str] | None = None
    csm: str | None = None
    account_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_alerts(
    session: AsyncSession, viewer: Viewer, filters: AlertFilter, limit: int, cursor: str | None
) -> tuple[list[Alert], str | None]:
    query = select(AlertRow).where(_visible(viewer))
    if filters.status:
        query = query.where(AlertRow.status.in_(filters.status))
    if filters.severity:
        query = query.where(AlertRow.severity.in_(filters.severity))
    if filters.reason:
        query = query.where(AlertRow.reason.in_(filters.reason))
    if filters.csm is not None:
        query = query.where(AlertRow.assigned_csm == filters.csm)
    if filters.account_id is not None:
        query = query.where(AlertRow.account_id == filters.account_id)
    if filters.since is not None:
        query = query.where(AlertRow.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AlertRow.occurred_at < filters.until)
    if cursor is not None:
        after_time, after_seq = decode_alert_cursor(cursor)
        query = query.where(
            or_(
                AlertRow.occurred_at < after_time,
                and_(AlertRow.occurred_at == after_time, AlertRow.seq < after_seq),
            )
        )
    query = query.order_by(AlertRow.occurred_at.desc(), AlertRow.seq.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_alert_cursor(last.occurred_at, last.seq)
    return [to_alert(row) for row in rows[:limit]], next_cursor


async def audit_log(session: AsyncSession, alert_id: str, viewer: Viewer) -> list[AuditEntry]:
    await get_alert_row(session, alert_id, viewer)
    rows = await session.scalars(
        select(AuditRow).where(AuditRow.alert_id == alert_id).order_by(AuditRow.id)
    )
    return [AuditEntry.model_validate(row, from_attributes=True) for row in rows]


_RANK_SEVERITY = {3: AlertSeverity.CRITICAL, 2: AlertSeverity.WARNING, 1: AlertSeverity.INFO}


def _account_visible(viewer: Viewer) -> Any:
    owners = viewer.owners
    if owners is None:
        return True
    names = sorted(owners)
    assigned = select(AlertRow.account_id).where(AlertRow.assigned_csm.in_(names))
    return or_(AccountRow.csm.in_(names), AccountRow.account_id.in_(assigned))


async def _histories(
    session: AsyncSession, account_ids: list[str], points: int
) -> dict[str, list[HistoryPoint]]:
    found: dict[str, list[HistoryPoint]] = {account_id: [] for account_id in account_ids}
    if not account_ids:
        return found
    rows = await session.scalars(
        select(HealthPointRow)
        .where(HealthPointRow.account_id.in_(account_ids))
        .order_by(HealthPointRow.account_id, HealthPointRow.as_of)
    )
    for row in rows:
        found[row.account_id].append(HistoryPoint.model_validate(row, from_attributes=True))
    return {key: value[-points:] for key, value in found.items()}


async def _alerts_by_account(
    session: AsyncSession, account_ids: list[str], viewer: Viewer, unresolved_only: bool
) -> dict[str, list[Alert]]:
    found: dict[str, list[Alert]] = {account_id: [] for account_id in account_ids}
    if not account_ids:
        return found
    query = select(AlertRow).where(AlertRow.account_id.in_(account_ids), _visible(viewer))
    if unresolved_only:
        query = query.where(AlertRow.status != AlertStatus.RESOLVED.value)
    for row in await session.scalars(
        query.order_by(AlertRow.occurred_at.desc(), AlertRow.seq.desc())
    ):
        if len(found[row.account_id]) < 200:
            found[row.account_id].append(to_alert(row))
    return found


def _max_severity(alerts: list[Alert]) -> AlertSeverity | None:
    ranks = [
        {"critical": 3, "warning": 2, "info": 1}[a.severity.value]
        for a in alerts
        if a.status != AlertStatus.RESOLVED
    ]
    return _RANK_SEVERITY[max(ranks)] if ranks else None


def _to_account(row: AccountRow, history: list[HistoryPoint], alerts: list[Alert]) -> Account:
    health = None
    if row.health is not None:
        health = Health.model_validate(row.health)
    mrr_at_risk = None
    if health is not None and row.mrr is not None:
        mrr_at_risk = round(row.mrr * health.churn_probability, 2)
    newest_alert = max((a.occurred_at for a in alerts), default=None)
    last_change = health.as_of if health is not None else newest_alert
    return Account(
        account_id=row.account_id,
        csm=row.csm,
        plan=row.plan,
        segment=row.segment,
        mrr=row.mrr,
        renewal_date=row.renewal_date,
        mrr_at_risk=mrr_at_risk,
        last_change=last_change,
        health=health,
        history=history,
        max_severity=_max_severity(alerts),
        alerts=alerts,
    )


#: Orders of ``GET /v1/accounts?sort=`` (docs/alerts.md); every one ends on account_id.
ACCOUNT_SORTS = ("risk", "score", "mrr_at_risk", "renewal", "last_change")


def _risk_columns(open_alerts: Any, bands: Bands) -> tuple[Any, Any, Any, Any]:
    """(band rank, score, MRR at risk, last change) as SQL expressions, portable JSON reads."""
    score = func.coalesce(AccountRow.score, open_alerts.c.alert_score)
    band = AccountRow.health["band"].as_string()
    band_rank = case(
        (band == "red", 0),
        (band == "yellow", 1),
        (band == "green", 2),
        (score < bands.red_below, 0),
        (score < bands.green_from, 1),
        (score.is_not(None), 2),
        else_=3,
    )
    churn = AccountRow.health["churn_probability"].as_float()
    mrr_at_risk = AccountRow.mrr * churn
    last_change = func.coalesce(AccountRow.health_as_of, open_alerts.c.newest)
    return band_rank, score, mrr_at_risk, last_change


async def list_accounts(
    session: AsyncSession,
    viewer: Viewer,
    at_risk: bool,
    limit: int,
    history_points: int,
    sort: str = "risk",
    bands: Bands | None = None,
) -> list[Account]:
    """Accounts in ``sort`` order; ``risk``: worst band, then lowest score, then MRR at risk.

    Risk is the account's state now (band, score, money), not how severe its
    oldest alert was: an alert whose condition cleared resolves itself
    (:func:`resolve_cleared`) and stops listing its account.
    """
    bands = bands or Bands()
    open_alerts = (
        select(
            AlertRow.account_id.label("account_id"),
            func.min(AlertRow.score).label("alert_score"),
            func.max(AlertRow.occurred_at).label("newest"),
        )
        .where(AlertRow.status != AlertStatus.RESOLVED.value, _visible(viewer))
        .group_by(AlertRow.account_id)
        .subquery()
    )
    join = AccountRow.account_id == open_alerts.c.account_id
    query = select(AccountRow).where(_account_visible(viewer))
    query = query.join(open_alerts, join) if at_risk else query.outerjoin(open_alerts, join)
    band_rank, score, mrr_at_risk, last_change = _risk_columns(open_alerts, bands)
    orders: dict[str, list[Any]] = {
        "risk": [band_rank, score.asc().nulls_last(), mrr_at_risk.desc().nulls_last()],
        "score": [score.asc().nulls_last()],
        "mrr_at_risk": [mrr_at_risk.desc().nulls_last(), score.asc().nulls_last()],
        "renewal": [AccountRow.renewal_date.asc().nulls_last(), score.asc().nulls_last()],
        "last_change": [last_change.desc().nulls_last()],
    }
    query = query.order_by(*orders[sort], AccountRow.account_id).limit(limit)
    rows = list(await session.scalars(query))
    ids = [row.account_id for row in rows]
    histories = await _histories(session, ids, history_points)
    alerts = await _alerts_by_account(session, ids, viewer, unresolved_only=True)
    return [_to_account(row, histories[row.account_id], alerts[row.account_id]) for row in rows]


async def get_account(
    session: AsyncSession, account_id: str, viewer: Viewer, history_points: int
) -> Account:
    row = await session.scalar(
        select(AccountRow).where(AccountRow.account_id == account_id, _account_visible(viewer))
    )
    if row is None:
        raise NotFound(f"account {account_id!r} not found")
    histories = await _histories(session, [account_id], history_points)
    alerts = await _alerts_by_account(session, [account_id], viewer, unresolved_only=False)
    return _to_account(row, histories[account_id], alerts[account_id])


async def list_deliveries(
    session: AsyncSession, state: str | None, limit: int, cursor: str | None
) -> tuple[list[Delivery], str | None]:
    query = select(OutboxRow)
    if state is not None:
        query = query.where(OutboxRow.state == state)
    if cursor is not None:
        query = query.where(OutboxRow.id < decode_cursor(cursor))
    rows = list(await session.scalars(query.order_by(OutboxRow.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return [to_delivery(row) for row in rows[:limit]], next_cursor


# ---------------------------------------------------------------- actions


def _audit(row: AlertRow, action: str, actor: str, details: dict[str, Any]) -> AuditRow:
    now = utcnow()
    row.updated_at = now
    return AuditRow(alert_id=row.alert_id, action=action, actor=actor, at=now, details=details)


def _require_unresolved(row: AlertRow, action: str) -> None:
    if row.status == AlertStatus.RESOLVED.value:
        raise Conflict(f"alert {row.alert_id!r} is resolved: cannot {action} it")


def _note(note: str | None) -> dict[str, Any]:
    return {"note": note} if note else {}


async def acknowledge(
    session: AsyncSession, alert_id: str, viewer: Viewer, note: str | None
) -> AlertRow:
    row = await get_alert_row(session, alert_id, viewer)
    _require_unresolved(row, "acknowledge")
    previous = row.status
    row.status = AlertStatus.ACKNOWLEDGED.value
    row.snoozed_until = None
    session.add(_audit(row, "acknowledged", viewer.actor, {"from": previous, **_note(note)}))
    await session.flush()
    return row


async def snooze(
    session: AsyncSession, alert_id: str, viewer: Viewer, until: datetime, note: str | None
) -> AlertRow:
    row = await get_alert_row(session, alert_id, viewer)
    _require_unresolved(row, "snooze")
    row.status = AlertStatus.SNOOZED.value
    row.snoozed_until = until
    details = {"until": until.isoformat(), **_note(note)}
    session.add(_audit(row, "snoozed", viewer.actor, details))
    await session.flush()
    return row


async def resolve(session: AsyncSession, alert_id: str, viewer: Viewer, note: str) -> AlertRow:
    row = await get_alert_row(session, alert_id, viewer)
    _require_unresolved(row, "resolve")
    row.status = AlertStatus.RESOLVED.value
    row.snoozed_until = None
    session.add(_audit(row, "resolved", viewer.actor, {"note": note}))
    await session.flush()
    return row


async def assign(session: AsyncSession, alert_id: str, viewer: Viewer, csm: str) -> AlertRow:
    row = await get_alert_row(session, alert_id, viewer)
    previous = row.assigned_csm
    row.assigned_csm = csm
    session.add(_audit(row, "assigned", viewer.actor, {"from": previous, "to": csm}))
    await session.flush()
    return row


# ---------------------------------------------------------------- sweeps


async def wake_snoozed(session: AsyncSession, now: datetime) -> list[AlertRow]:
    """Snoozes that ran out return to ``open``."""
    rows = list(
        await session.scalars(
            select(AlertRow).where(
                AlertRow.status == AlertStatus.SNOOZED.value, AlertRow.snoozed_until <= now
            )
        )
    )
    for row in rows:
        until = row.snoozed_until.isoformat() if row.snoozed_until else None
        row.status = AlertStatus.OPEN.value
        row.snoozed_until = None
        session.add(_audit(row, "unsnoozed", SYSTEM, {"until": until}))
    await session.flush()
    return rows


def escalation_target(routing: RoutingConfig, owner: str | None) -> str | None:
    """The owner's team lead; else the configured ``escalation.to``; else the owner."""
    return routing.lead_for(owner) or routing.escalation.to or owner


async def escalate_overdue(
    session: AsyncSession,
    now: datetime,
    after: timedelta,
    routing: RoutingConfig,
    public_url: str,
) -> list[AlertRow]:
    """Critical alerts still ``open`` after ``after`` are escalated once, with notifications.

    They go to the lead of the owner's team (:func:`escalation_target`).
    """
    rows = list(
        await session.scalars(
            select(AlertRow)
            .where(
                and_(
                    AlertRow.status == AlertStatus.OPEN.value,
                    AlertRow.severity == AlertSeverity.CRITICAL.value,
                    AlertRow.escalated_at.is_(None),
                    AlertRow.backfilled.is_(False),
                    AlertRow.created_at <= now - after,
                )
            )
            .order_by(AlertRow.seq)
        )
    )
    for row in rows:
        row.escalated_at = now
        target = escalation_target(routing, row.assigned_csm)
        hooks = routing.webhooks_for(target)
        session.add(_audit(row, "escalated", SYSTEM, {"to": target}))
        session.add_all(_outbox_rows(to_alert(row), hooks, "escalation", public_url))
    await session.flush()
    return rows


async def outbox_stats(session: AsyncSession) -> tuple[int, datetime | None]:
    depth, oldest = (
        await session.execute(
            select(func.count(OutboxRow.id), func.min(OutboxRow.created_at)).where(
                OutboxRow.state == DeliveryState.PENDING.value
            )
        )
    ).one()
    if isinstance(oldest, str):  # aggregate results bypass the column type on SQLite
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(depth), oldest
