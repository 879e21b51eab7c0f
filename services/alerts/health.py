"""Current health and score history of accounts, written in bulk.

Why bulk: the scorer publishes a health update for nearly every event (2,000/s
and more), and a page only needs each account's latest score plus a short
history for its sparkline. So the health writer is handed, per flush, the
updates that matter and writes them with a few statements whatever their number:

- ``accounts``: an upsert of the newest update of each account (newest event
  time wins, so a late or replayed update never moves "current" backwards);
- ``health_history``: one point per account and *event-time* interval
  (``alerts_history_interval``, an hour by default): the newest score of that
  interval, moved forward in place while the interval lasts; when a new
  interval begins for an account, a point is added and the account's history
  trimmed to its newest ``history_points``.

Because history is keyed by event time, the sparkline is the same whether the
updates came live, one by one, or in a burst (a replay, a backlog): it shows
the trend over time, not over however many updates arrived last.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession

from schemas import HealthUpdate
from services.alerts.db import AccountRow, Base, HealthPointRow, utcnow
from services.alerts.store import dialect_insert

ACCOUNTS = Base.metadata.tables[AccountRow.__tablename__]
HISTORY = Base.metadata.tables[HealthPointRow.__tablename__]


def interval_start(moment: datetime, seconds: float) -> datetime:
    """Start of the history interval holding ``moment`` (intervals align on the epoch)."""
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def latest_per_account(updates: Iterable[HealthUpdate]) -> list[HealthUpdate]:
    """The newest update of each account (by event time; on a tie the later one).

    Sorted by account, so concurrent writers lock rows in one order (no deadlock).
    """
    latest: dict[str, HealthUpdate] = {}
    for update in updates:
        current = latest.get(update.account_id)
        if current is None or update.as_of >= current.as_of:
            latest[update.account_id] = update
    return [latest[account_id] for account_id in sorted(latest)]


def latest_per_interval(updates: Iterable[HealthUpdate], seconds: float) -> list[HealthUpdate]:
    """The newest update of each (account, history interval), sorted by account and time."""
    latest: dict[tuple[str, datetime], HealthUpdate] = {}
    for update in updates:
        key = (update.account_id, interval_start(update.as_of, seconds))
        current = latest.get(key)
        if current is None or update.as_of >= current.as_of:
            latest[key] = update
    return [latest[key] for key in sorted(latest)]


class HealthRows:
    """Column values for one flush (CPU work: build them outside any lock)."""

    def __init__(self, updates: Iterable[HealthUpdate], interval: float) -> None:
        points = latest_per_interval(updates, interval)
        self.interval = interval
        now = utcnow()
        #: The newest update of each account: what alerts are resolved against.
        self.latest: list[HealthUpdate] = latest_per_account(points)
        self.current: list[dict[str, Any]] = [
            {
                "account_id": update.account_id,
                "csm_source": "routing",
                "health": update.model_dump(mode="json"),
                "health_as_of": update.as_of,
                "score": update.score,
                "updated_at": now,
            }
            for update in self.latest
        ]
        self.points: list[dict[str, Any]] = []
        for update in points:
            start = interval_start(update.as_of, interval)
            self.points.append(
                {
                    "account_id": update.account_id,
                    "as_of": update.as_of,
                    "score": update.score,
                    "band": update.band.value,
                    "start": start,
                    "end": datetime.fromtimestamp(start.timestamp() + interval, UTC),
                }
            )

    def __len__(self) -> int:
        return len(self.current)

    def chunks(self, accounts: int) -> list[HealthRows]:
        """Split by account (``accounts`` per chunk), e.g. to keep transactions short."""
        if len(self.current) <= accounts:
            return [self]
        parts = []
        for start in range(0, len(self.current), accounts):
            part = HealthRows([], self.interval)
            part.current = self.current[start : start + accounts]
            part.latest = self.latest[start : start + accounts]
            ids = {row["account_id"] for row in part.current}
            part.points = [row for row in self.points if row["account_id"] in ids]
            parts.append(part)
        return parts


async def write_health_rows(session: AsyncSession, rows: HealthRows, history_points: int) -> None:
    """Upsert the current health of each account, then its history points."""
    if not rows.current:
        return
    insert = dialect_insert(session, ACCOUNTS)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[ACCOUNTS.c.account_id],
            set_={
                "health": insert.excluded.health,
                "health_as_of": insert.excluded.health_as_of,
                "score": insert.excluded.score,
                "updated_at": insert.excluded.updated_at,
            },
            where=or_(
                ACCOUNTS.c.health_as_of.is_(None),
                insert.excluded.health_as_of >= ACCOUNTS.c.health_as_of,
            ),
        ),
        rows.current,
    )
    await _write_points(session, rows, history_points)


async def _write_points(session: AsyncSession, rows: HealthRows, history_points: int) -> None:
    """One point per (account, interval), moved forward in place as newer scores come.

    In steady traffic an account's interval already has its point, so the
    UPDATE does the work, the INSERT finds nothing to add, and the trim is
    skipped: two cheap statements, and the history does not grow. The trim
    runs only when a point was added (a new interval began for some account).
    """
    if not rows.points:
        return
    same = HISTORY.alias("same")
    account = bindparam("p_account", type_=HISTORY.c.account_id.type)
    as_of = bindparam("p_as_of", type_=HISTORY.c.as_of.type)
    score = bindparam("p_score", type_=HISTORY.c.score.type)
    band = bindparam("p_band", type_=HISTORY.c.band.type)
    in_interval = (
        (same.c.account_id == account)
        & (same.c.as_of >= bindparam("p_start", type_=HISTORY.c.as_of.type))
        & (same.c.as_of < bindparam("p_end", type_=HISTORY.c.as_of.type))
    )
    params = [
        {
            "p_account": row["account_id"],
            "p_as_of": row["as_of"],
            "p_score": row["score"],
            "p_band": row["band"],
            "p_start": row["start"],
            "p_end": row["end"],
        }
        for row in rows.points
    ]
    # The interval has a point: it becomes this one if this one is newer.
    newest = (
        select(same.c.id).where(in_interval).order_by(same.c.as_of.desc()).limit(1)
    ).scalar_subquery()
    await session.execute(
        sql_update(HISTORY)
        .where(HISTORY.c.id == newest, HISTORY.c.as_of < as_of)
        .values(as_of=as_of, score=score, band=band),
        params,
    )
    # The interval has no point yet: add one.
    added = await session.execute(
        dialect_insert(session, HISTORY)
        .from_select(
            ["account_id", "as_of", "score", "band"],
            select(account, as_of, score, band).where(
                ~select(same.c.id).where(in_interval).exists()
            ),
        )
        .on_conflict_do_nothing(index_elements=[HISTORY.c.account_id, HISTORY.c.as_of]),
        params,
    )
    if getattr(added, "rowcount", -1) != 0:  # some were added, or the driver cannot tell
        await trim_history(session, [row["account_id"] for row in rows.current], history_points)


async def trim_history(session: AsyncSession, account_ids: list[str], keep: int) -> None:
    """Delete all but the newest ``keep`` points of each of ``account_ids``.

    One statement executed per account, each an index range on (account_id,
    as_of): several times cheaper than ranking every point of the batch's
    accounts with a window function.
    """
    newer = HISTORY.alias("newer")
    cutoff = (
        select(newer.c.as_of)
        .where(newer.c.account_id == bindparam("account"))
        .order_by(newer.c.as_of.desc())
        .limit(1)
        .offset(keep - 1)
        .scalar_subquery()
    )
    await session.execute(
        delete(HISTORY).where(
            HISTORY.c.account_id == bindparam("account"), HISTORY.c.as_of < cutoff
        ),
        [{"account": account_id} for account_id in account_ids],
    )


async def store_health_batch(
    session: AsyncSession,
    updates: Iterable[HealthUpdate],
    history_points: int,
    interval: float = 3600.0,
) -> int:
    """Store a batch of updates (see the module doc); returns the accounts touched."""
    rows = HealthRows(updates, interval)
    await write_health_rows(session, rows, history_points)
    return len(rows)
