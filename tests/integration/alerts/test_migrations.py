"""Upgrading a store that holds data: 0001 -> head keeps every alert, with its rule severity."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, text

from services.alerts.db import UTCDateTime, make_engine
from services.alerts.migrate import alembic_config, head_revision, upgrade

WHEN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def test_upgrade_from_0001_keeps_alerts_and_fills_rule_severity(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO alerts (alert_id, dedupe_key, account_id, reason, severity,"
                    " score, drivers, occurred_at, message, status, created_at, updated_at)"
                    " VALUES ('a1', 'k1', 'acme', 'entered_red', 'critical', 30, '[]',"
                    " :t, 'm', 'open', :t, :t)"
                ).bindparams(bindparam("t", type_=UTCDateTime())),
                {"t": WHEN},
            )
            await conn.execute(
                text(
                    "INSERT INTO accounts (account_id, csm_source, updated_at)"
                    " VALUES ('acme', 'routing', :t)"
                ).bindparams(bindparam("t", type_=UTCDateTime())),
                {"t": WHEN},
            )
        await upgrade(engine)
        async with engine.connect() as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            row = (await conn.execute(text("SELECT severity, rule_severity FROM alerts"))).one()
            renewal = await conn.scalar(text("SELECT renewal_date FROM accounts"))
            backfilled = await conn.scalar(text("SELECT backfilled FROM alerts"))
        assert version == head_revision()
        assert tuple(row) == ("critical", "critical")
        assert renewal is None
        assert backfilled in (False, 0)  # alerts stored before the column were live
    finally:
        await engine.dispose()


def test_migrations_form_one_numbered_chain() -> None:
    """Two migrations written on two branches, both naming the old head, would fork it."""
    script = ScriptDirectory.from_config(alembic_config())
    chain = [rev.revision for rev in script.walk_revisions()][::-1]
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
    assert head_revision() == chain[-1]
