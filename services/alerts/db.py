"""Tables of the alert store and the async engine that reaches them.

One schema for SQLite and PostgreSQL: portable column types only, timestamps
always UTC (SQLite keeps no zone, so :class:`UTCDateTime` normalises both ways).
The Alembic migration in ``migrations/versions`` creates exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store one naive-UTC format everywhere.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class AlertRow(Base):
    __tablename__ = "alerts"

    # Surrogate, monotonic: the cursor of pagination and the stored order.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(256), unique=True)
    dedupe_key: Mapped[str] = mapped_column(String(256), unique=True)
    account_id: Mapped[str] = mapped_column(String(256), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    #: The scorer rule's severity; ``severity`` is it capped by the band (conditions.py).
    rule_severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    score: Mapped[float] = mapped_column(Float)
    previous_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    drivers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    csm: Mapped[str | None] = mapped_column(String(256), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    assigned_csm: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Fired for an event older than ``alerts_backfill_after_hours`` when it arrived
    #: (a backfill): stored and listed, never delivered or escalated.
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditRow(Base):
    __tablename__ = "alert_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(
        String(256), ForeignKey("alerts.alert_id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(256))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboxRow(Base):
    """One notification to send. Written in the alert's transaction, so none is ever lost."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(256), index=True)
    account_id: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # alert | escalation
    destination: Mapped[str] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))  # slack | json
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccountRow(Base):
    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    csm: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    # Where the owner came from: "event" (account events win) or "routing".
    csm_source: Mapped[str] = mapped_column(String(16), default="routing")
    plan: Mapped[str | None] = mapped_column(String(128), nullable=True)
    segment: Mapped[str | None] = mapped_column(String(128), nullable=True)
    mrr: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``renewal_date`` of the latest account event, as sent (ISO date or RFC 3339).
    renewal_date: Mapped[str | None] = mapped_column(String(64), nullable=True)
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    health_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HealthPointRow(Base):
    __tablename__ = "health_history"
    __table_args__ = (UniqueConstraint("account_id", "as_of", name="uq_health_account_as_of"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(256), index=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(16))


def _json_dumps(value: Any) -> str:
    """JSON columns via orjson: health documents are written thousands of times a second."""
    return orjson.dumps(value).decode()


def make_engine(database_url: str, *, read_only: bool = False) -> AsyncEngine:
    """Async engine; SQLite gets WAL, full sync and write-locking transactions.

    ``read_only=True`` (SQLite) keeps plain deferred transactions: in WAL mode
    readers never wait for writers, so API reads stay fast under ingest load.

    SQLite transactions start as ``BEGIN IMMEDIATE``: the consumer, the outbox
    worker and API actions all read-then-write, and a deferred transaction that
    tries to upgrade its read lock after another writer committed fails at once
    with "database is locked" (the busy timeout does not apply to that case).
    Taking the write lock up front makes them queue on the busy timeout instead.
    """
    if database_url.startswith("sqlite"):
        engine = create_async_engine(
            database_url, connect_args={"timeout": 30}, json_serializer=_json_dumps
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_async_engine(
        database_url, pool_pre_ping=True, pool_size=10, json_serializer=_json_dumps
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
