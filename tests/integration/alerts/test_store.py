"""The store against a real SQLite file and PostgreSQL: migrations, time zones,
health history, owner changes. (Kafka and HTTP are covered by the other tests.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from schemas import Event, HealthUpdate, RiskAlert
from services.alerts import store
from services.alerts.db import HealthPointRow, OutboxRow, make_engine, make_sessionmaker
from services.alerts.health import store_health_batch
from services.alerts.migrate import head_revision, upgrade
from services.alerts.routing import RoutingConfig
from tests.integration.alerts.helpers import account_event, health_update, risk_alert

ROUTING = RoutingConfig.model_validate(
    {
        "default_owner": "pool",
        "webhooks": [{"name": "all", "owner": "*", "url": "http://x", "secret": "s"}],
    }
)
ADMIN = store.Viewer(actor="admin")


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[Any]]:
    engine = make_engine(database_url)
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


def test_migrate_command_is_idempotent(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSTREAM_")}
    env["HEALTHSTREAM_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "healthstream.cli", "alerts", "migrate"]
    for _ in range(2):
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()[-2000:]


async def test_migrations_reach_head(sessions: async_sessionmaker[Any]) -> None:
    async with sessions() as session:
        version = await session.scalar(text("SELECT version_num FROM alembic_version"))
        tables = await session.scalar(select(func.count(OutboxRow.id)))
    assert version == head_revision()
    assert tables == 0


async def test_timestamps_come_back_as_the_same_instant_in_utc(
    sessions: async_sessionmaker[Any],
) -> None:
    raw = risk_alert("tz", 1)
    raw["occurred_at"] = "2026-11-01T11:30:00.123456+02:00"
    async with sessions() as session, session.begin():
        await store.store_alert(session, RiskAlert.model_validate(raw), ROUTING, "http://hs")
    async with sessions() as session:
        row = await store.get_alert_row(session, "tz-entered_red-1", ADMIN)
    expected = datetime(2026, 11, 1, 11, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert row.occurred_at == expected
    assert row.occurred_at.tzinfo == UTC
    async with sessions() as session:
        since = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)  # == 11:30+02:00: inclusive
        found, _ = await store.list_alerts(session, ADMIN, store.AlertFilter(since=since), 10, None)
        later, _ = await store.list_alerts(
            session, ADMIN, store.AlertFilter(since=since + timedelta(seconds=1)), 10, None
        )
    assert [a.alert_id for a in found] == ["tz-entered_red-1"]
    assert later == []


async def test_store_alert_is_idempotent_and_writes_outbox_in_same_transaction(
    sessions: async_sessionmaker[Any],
) -> None:
    alert = RiskAlert.model_validate(risk_alert("idem", 1))
    async with sessions() as session, session.begin():
        first = await store.store_alert(session, alert, ROUTING, "http://hs")
        again = await store.store_alert(session, alert, ROUTING, "http://hs")
    assert first is not None and again is None
    # A crash before commit leaves neither the alert nor its notification.
    other = RiskAlert.model_validate(risk_alert("idem", 2))
    with pytest.raises(RuntimeError, match="crash"):
        async with sessions() as session, session.begin():
            await store.store_alert(session, other, ROUTING, "http://hs")
            raise RuntimeError("crash before commit")
    async with sessions() as session:
        outbox = list(await session.scalars(select(OutboxRow)))
    assert [(o.alert_id, o.destination, o.state) for o in outbox] == [
        ("idem-entered_red-1", "all", "pending")
    ]


async def test_latest_health_wins_by_event_time_and_history_is_bounded(
    sessions: async_sessionmaker[Any],
) -> None:
    def update(score: float, minute: int, account: str = "hist") -> HealthUpdate:
        return HealthUpdate.model_validate(health_update(account, score, minute))

    async def store_batch(*updates: HealthUpdate) -> int:
        async with sessions() as session, session.begin():
            # One history point per account and minute of event time, four kept.
            return await store_health_batch(session, updates, history_points=4, interval=60.0)

    for minute in range(10):  # ten batches of one update each
        await store_batch(update(50.0 + minute, minute))
    # Late, older update and a replayed one: neither moves "current" nor duplicates a point.
    await store_batch(update(10.0, -5))
    await store_batch(update(59.0, 9))
    # One batch, several updates per account in any order: the newest event time is
    # current, and history keeps the newest score of each minute.
    touched = await store_batch(
        update(70.0, 30, "other"), update(71.0, 31, "other"), update(61.0, 20), update(60.0, 15)
    )
    assert touched == 2
    # Later in the same minute, in another batch: replaces that minute's point.
    await store_batch(
        update(62.0, 20).model_copy(update={"as_of": update(0, 20).as_of.replace(second=30)})
    )
    async with sessions() as session:
        account = await store.get_account(session, "hist", ADMIN, history_points=4)
        other = await store.get_account(session, "other", ADMIN, history_points=4)
        stored = await session.scalar(
            select(func.count(HealthPointRow.id)).where(HealthPointRow.account_id == "hist")
        )
    assert account.health is not None and account.health.score == 62.0
    assert [p.score for p in account.history] == [58.0, 59.0, 60.0, 62.0]
    assert stored == 4
    assert other.health is not None and other.health.score == 71.0
    assert [p.score for p in other.history] == [70.0, 71.0]


async def test_history_keeps_the_newest_score_of_each_interval(
    sessions: async_sessionmaker[Any],
) -> None:
    """A burst (a replay, a backlog) draws the same sparkline as the same updates live."""
    updates = [
        HealthUpdate.model_validate(health_update("burst", 40.0 + n, 20 * n)) for n in range(9)
    ]
    async with sessions() as session, session.begin():  # all at once
        await store_health_batch(session, updates, history_points=60, interval=3600.0)
    for one in updates:  # one by one, into another account
        async with sessions() as session, session.begin():
            renamed = one.model_copy(update={"account_id": "live"})
            await store_health_batch(session, [renamed], history_points=60, interval=3600.0)
    async with sessions() as session:
        burst = await store.get_account(session, "burst", ADMIN, history_points=60)
        live = await store.get_account(session, "live", ADMIN, history_points=60)
    # Minutes 0..160 in steps of 20 over three hours (9:00-11:40): newest of each hour.
    assert [p.score for p in burst.history] == [42.0, 45.0, 48.0]
    assert [p.score for p in live.history] == [42.0, 45.0, 48.0]


async def test_health_and_alerts_create_the_same_account_concurrently(
    sessions: async_sessionmaker[Any],
) -> None:
    """The health writer and the alert writer race to create an account: both win."""
    alerts = [RiskAlert.model_validate(risk_alert(f"race{n}", n)) for n in range(20)]
    updates = [HealthUpdate.model_validate(health_update(f"race{n}", 40.0)) for n in range(20)]

    async def write_alerts() -> None:
        async with sessions() as session, session.begin():
            rows = await store.store_alerts(session, alerts, ROUTING, "http://hs")
            assert all(row is not None for row in rows)

    async def write_health() -> None:
        async with sessions() as session, session.begin():
            await store_health_batch(session, updates, history_points=4)

    await asyncio.gather(write_alerts(), write_health())
    async with sessions() as session:
        accounts = await store.list_accounts(session, ADMIN, True, 100, 4)
    assert len(accounts) == 20
    assert all(a.csm == "pool" and a.health and a.health.score == 40.0 for a in accounts)


async def test_owner_change_moves_routed_open_alerts_only(
    sessions: async_sessionmaker[Any],
) -> None:
    async with sessions() as session, session.begin():
        for n in (1, 2, 3):
            await store.store_alert(
                session, RiskAlert.model_validate(risk_alert("move", n)), ROUTING, "http://hs"
            )
        await store.assign(session, "move-entered_red-2", ADMIN, "someone-else")
        await store.resolve(session, "move-entered_red-3", ADMIN, "done")
    async with sessions() as session, session.begin():
        event = Event.model_validate(account_event("move", 1, csm="new-owner"))
        moved = await store.store_account_event(session, event, ROUTING)
    assert [row.alert_id for row in moved] == ["move-entered_red-1"]
    async with sessions() as session:
        owners = {
            a.alert_id: a.assigned_csm
            for a in (await store.list_alerts(session, ADMIN, store.AlertFilter(), 10, None))[0]
        }
        audit = await store.audit_log(session, "move-entered_red-1", ADMIN)
    assert owners == {
        "move-entered_red-1": "new-owner",
        "move-entered_red-2": "someone-else",
        "move-entered_red-3": "pool",
    }
    assert audit[-1].action == "assigned" and audit[-1].details["to"] == "new-owner"


async def test_account_events_of_one_fetch_apply_in_order_in_bulk(
    sessions: async_sessionmaker[Any],
) -> None:
    async with sessions() as session, session.begin():
        await store.store_alert(
            session, RiskAlert.model_validate(risk_alert("bulk", 1)), ROUTING, "http://hs"
        )
    events = [
        Event.model_validate(account_event("bulk", 1, csm="first", plan="pro")),
        Event.model_validate(account_event("fresh", 1, segment="smb", mrr=120)),
        Event.model_validate(account_event("bulk", 2, csm="second")),
    ]
    async with sessions() as session, session.begin():
        moved = await store.store_account_events(session, events, ROUTING)
    assert [row.alert_id for row in moved] == ["bulk-entered_red-1"]
    assert moved[0].assigned_csm == "second"
    async with sessions() as session:
        bulk = await store.get_account(session, "bulk", ADMIN, history_points=4)
        fresh = await store.get_account(session, "fresh", ADMIN, history_points=4)
        audit = await store.audit_log(session, "bulk-entered_red-1", ADMIN)
    assert (bulk.csm, bulk.plan) == ("second", "pro")
    assert (fresh.csm, fresh.segment, fresh.mrr) == ("pool", "smb", 120.0)
    # The alert followed each change, and each move is audited.
    assert [(e.action, e.details.get("from"), e.details.get("to")) for e in audit] == [
        ("created", None, None),
        ("assigned", "pool", "first"),
        ("assigned", "first", "second"),
    ]


async def test_alerts_raised_by_a_backfill_are_stored_and_listed_but_never_delivered(
    sessions: async_sessionmaker[Any],
) -> None:
    """An alert for an event older than the backfill age is history, not news."""
    now = datetime.now(UTC)
    old, fresh = risk_alert("backfill", 1), risk_alert("backfill", 2)
    old["occurred_at"] = (now - timedelta(days=3)).isoformat()
    fresh["occurred_at"] = (now - timedelta(minutes=5)).isoformat()
    async with sessions() as session, session.begin():
        rows = await store.store_alerts(
            session,
            [RiskAlert.model_validate(a) for a in (old, fresh)],
            ROUTING,
            "http://hs",
            backfill_after=timedelta(hours=24),
        )
        assert [row.backfilled for row in rows if row is not None] == [True, False]
        # Critical and open for long: only the live one is escalated.
        late = now + timedelta(hours=2)
        escalated = await store.escalate_overdue(
            session, late, timedelta(minutes=30), ROUTING, "http://hs"
        )
    async with sessions() as session:
        outbox = list(await session.scalars(select(OutboxRow)))
        page, _ = await store.list_alerts(
            session, ADMIN, store.AlertFilter(account_id="backfill"), 10, None
        )
        audit = await store.audit_log(session, "backfill-entered_red-1", ADMIN)
    assert {(o.alert_id, o.kind) for o in outbox} == {
        ("backfill-entered_red-2", "alert"),
        ("backfill-entered_red-2", "escalation"),
    }
    assert [row.alert_id for row in escalated] == ["backfill-entered_red-2"]
    assert {(a.alert_id, a.backfilled) for a in page} == {
        ("backfill-entered_red-1", True),
        ("backfill-entered_red-2", False),
    }
    assert audit[0].action == "created" and audit[0].details == {"backfilled": True}
