"""Kafka -> alert store, as two independent consumers.

Why two: the scorer publishes far more ``account-health`` updates than
``risk-alerts``. Read from one consumer, every alert waited behind the health
rows fetched with it. Now

- :class:`AlertConsumer` reads ``risk-alerts`` and ``account-events`` (both
  rare; account facts route alerts) in the group ``alerts_consumer_group``;
- :class:`HealthConsumer` reads ``account-health`` in its own group
  (``<alerts_consumer_group>-health``), gathers its fetches for up to a second
  and keeps only the updates that matter (the newest of each account and
  history interval), written with bulk statements (:mod:`services.alerts.health`).

Each fetch (alerts) or flush (health) is written in ONE database
transaction, and the offsets are
committed only after that transaction committed. A crash in between replays the
fetch, which the idempotent store turns into no-ops. Messages that fail
validation go to the topic's ``.dlq`` when it exists (and are counted), never
silently dropped. New alerts are pushed to the stream and the outbox worker
right after the commit, before the offset commit's round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any

import orjson
import tenacity
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from healthstream import retry
from healthstream.contract import parse_rfc3339
from healthstream.deadletter import dead_letter_headers
from healthstream.kafka import ConsumerLag, make_consumer, make_producer
from schemas import Event, HealthUpdate, RiskAlert
from services.alerts import metrics
from services.alerts.db import AlertRow
from services.alerts.gate import NoGate, WriteGate
from services.alerts.health import (
    HealthRows,
    interval_start,
    store_health_batch,
    write_health_rows,
)
from services.alerts.models import Alert
from services.alerts.routing import RoutingConfig
from services.alerts.settings import AlertsSettings
from services.alerts.store import (
    resolve_cleared,
    store_account_event,
    store_account_events,
    store_alert,
    store_alerts,
    to_alert,
)

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]
#: Validations between two yields to the event loop (keeps the API and alerts responsive).
_YIELD_EVERY = 50
#: Tries of one batch before the consumer gives up and is restarted (~3 s of backoff).
STORE_ATTEMPTS = 6


def _check_utc(value: datetime, field: str) -> None:
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{field} is out of range once converted to UTC") from None


def _refused_for_good(exc: DBAPIError) -> bool:
    """The database rejects this data itself (SQLSTATE class 22 data / 23 integrity).

    asyncpg's errors all surface as a plain DBAPIError, hence the SQLSTATE check.
    Anything else (connection lost, locked, deadlock) is transient: retry the batch.
    """
    if isinstance(exc, DataError | IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return sqlstate[:2] in {"22", "23"}


class _BatchConsumer:
    """Fetch, store in one transaction, then commit offsets; retry until stored."""

    kind = "records"

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[Any],
        topics: list[str],
        group_id: str,
        max_records: int,
        fetch_max_wait_ms: int = 500,
        gate: WriteGate | None = None,
        flush_interval: float = 0.0,
    ) -> None:
        self.settings = settings
        #: Fetches are gathered this long (or up to max_records) into one transaction.
        self.flush_interval = flush_interval
        self.gate = gate or NoGate()
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.sessions = sessions
        self.topic_names = topics
        self.group_id = group_id
        self.max_records = max_records
        self.topics = settings.topics
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.running = False
        self.lag = ConsumerLag(metrics.CONSUMER_LAG)

    async def run(self) -> None:
        self.consumer = make_consumer(
            self.settings,
            *self.topic_names,
            group_id=self.group_id,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        self.producer = make_producer(self.settings)
        await self.consumer.start()
        await self.producer.start()
        self.running = True
        pending: Batch = {}
        count = 0
        since = 0.0
        try:
            while True:
                wait = 0.5
                if pending:
                    wait = max(0.0, since + self.flush_interval - time.monotonic())
                batch = await self.consumer.getmany(
                    timeout_ms=int(wait * 1000), max_records=self.max_records - count
                )
                if batch and not pending:
                    since = time.monotonic()
                for tp, records in batch.items():
                    pending.setdefault(tp, []).extend(records)
                    count += len(records)
                due = time.monotonic() - since >= self.flush_interval
                if pending and (due or count >= self.max_records):
                    await self._handle_with_retry(pending)
                    pending, count = {}, 0
                await self.lag.update(self.consumer)
        finally:
            self.running = False
            await self.consumer.stop()
            await self.producer.stop()

    async def _handle_with_retry(self, batch: Batch) -> None:
        """Retry the batch a few times in place: never skip past unstored records.

        A failure that outlasts the retries (database down) raises: the
        supervisor restarts the consumer, which replays from the committed
        offsets (the store is idempotent), and counts it towards ``/healthz``.
        """
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(Exception),
            stop=tenacity.stop_after_attempt(STORE_ATTEMPTS),
            wait=retry.wait(),
            before_sleep=lambda rs: log.warning(
                "storing a batch of %s failed; retrying in %.1fs",
                self.kind,
                rs.next_action.sleep if rs.next_action else 0.0,
                exc_info=rs.outcome.exception() if rs.outcome else None,
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                started = time.perf_counter()
                await self.handle(batch)
                metrics.STORE_SECONDS.labels(self.kind).observe(time.perf_counter() - started)

    async def handle(self, batch: Batch) -> None:
        raise NotImplementedError

    async def _commit(self, batch: Batch) -> None:
        """Move the group's offsets past ``batch``: call only once it is durable."""
        assert self.consumer is not None
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions moved to another member during a rebalance: it replays
            # from the last committed offset and the store ignores what we wrote.
            log.warning("offset commit refused after rebalance: %s", exc)

    async def _dead_letter(self, topic: str, record: ConsumerRecord, exc: Exception) -> None:
        metrics.INVALID.labels(topic).inc()
        log.warning(
            "invalid message on %s at offset %s: %s",
            topic,
            record.offset,
            str(exc)[:500],
            extra={"topic": topic, "partition": record.partition, "offset": record.offset},
        )
        dlq = self.topics.dlq(topic)
        if dlq in self.topics.all and self.producer is not None:
            stage = "store" if isinstance(exc, DBAPIError) else "schema"
            headers = dead_letter_headers(
                topic, stage, exc, partition=record.partition, offset=record.offset
            )
            await self.producer.send_and_wait(
                dlq, value=record.value, key=record.key, headers=headers
            )


Parsed = tuple[str, ConsumerRecord, RiskAlert | Event]


class AlertConsumer(_BatchConsumer):
    """``risk-alerts`` and ``account-events``: routing, alert rows, audit, outbox."""

    kind = "alerts"

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[Any],
        routing: RoutingConfig,
        on_new_alerts: Callable[[list[Alert]], None],
        on_changed: Callable[[list[Alert]], None] | None = None,
        gate: WriteGate | None = None,
    ) -> None:
        topics = settings.topics
        super().__init__(
            settings,
            sessions,
            [topics.risk_alerts, topics.account],
            settings.alerts_consumer_group,
            max_records=500,
            fetch_max_wait_ms=settings.alerts_fetch_max_wait_ms,
            gate=gate,
        )
        self.routing = routing
        self.on_new_alerts = on_new_alerts
        self.on_changed = on_changed or (lambda alerts: None)

    def _parse(self, topic: str, record: ConsumerRecord) -> RiskAlert | Event | None:
        """Validate one record; ValueError (incl. pydantic's) means it can never be stored."""
        if record.value is None:
            return None  # tombstone: nothing to store
        data = orjson.loads(record.value)
        if topic == self.topics.risk_alerts:
            alert = RiskAlert.model_validate(data)
            _check_utc(alert.occurred_at, "occurred_at")
            return alert
        return Event.model_validate(data)

    async def handle(self, batch: Batch) -> None:
        items: list[Parsed] = []
        invalid: list[tuple[str, ConsumerRecord, Exception]] = []
        for tp, records in batch.items():
            for record in records:
                try:
                    parsed = self._parse(tp.topic, record)
                except ValueError as exc:
                    invalid.append((tp.topic, record, exc))
                    continue
                if parsed is not None:
                    items.append((tp.topic, record, parsed))
        try:
            stored, moved = await self._store(items)
        except DBAPIError as exc:
            if not _refused_for_good(exc):
                raise
            # Some record is refused by the database: find it, one savepoint each.
            stored, moved, refused = await self._store_one_by_one(items)
            invalid.extend(refused)
        # Durable now: tell the page and the outbox at once, then move the offsets.
        new_rows = [row for _, row in stored if row is not None]
        if new_rows:
            self.on_new_alerts([to_alert(row) for row in new_rows])
        if moved:
            self.on_changed([to_alert(row) for row in moved])
        now_ms = time.time() * 1000
        for topic, record, _ in items:
            if topic == self.topics.risk_alerts and record.timestamp is not None:
                metrics.STORE_LAG.observe(max(0.0, now_ms - record.timestamp) / 1000)
        for topic, record, error in invalid:
            await self._dead_letter(topic, record, error)
        await self._commit(batch)
        for _, _, parsed in items:
            if isinstance(parsed, RiskAlert):
                metrics.RECEIVED.labels(parsed.reason.value).inc()
        for alert, row in stored:
            counter = metrics.STORED if row is not None else metrics.DUPLICATES
            counter.labels(alert.reason.value).inc()
            # Rare (one per new alert): links the scorer's line to the deliveries.
            log.log(
                logging.INFO if row is not None else logging.DEBUG,
                "alert stored" if row is not None else "duplicate alert ignored",
                extra={
                    "alert_id": alert.alert_id,
                    "account_id": alert.account_id,
                    "reason": alert.reason.value,
                },
            )

    async def _store(
        self, items: list[Parsed]
    ) -> tuple[list[tuple[RiskAlert, AlertRow | None]], list[AlertRow]]:
        """The whole fetch in one transaction: account facts first, then the alerts in order."""
        alerts = [parsed for _, _, parsed in items if isinstance(parsed, RiskAlert)]
        events = [parsed for _, _, parsed in items if isinstance(parsed, Event)]
        async with self.gate.urgent(), self.sessions() as session, session.begin():
            moved = await store_account_events(session, events, self.routing)
            rows = await store_alerts(
                session,
                alerts,
                self.routing,
                self.settings.public_url,
                self.settings.bands,
                self.settings.backfill_after,
            )
        return list(zip(alerts, rows, strict=True)), moved

    async def _store_one_by_one(
        self, items: list[Parsed]
    ) -> tuple[
        list[tuple[RiskAlert, AlertRow | None]],
        list[AlertRow],
        list[tuple[str, ConsumerRecord, Exception]],
    ]:
        """Slow path: a SAVEPOINT per record, so one refused record goes to the DLQ alone.

        Connection errors still fail the batch, which is then retried whole.
        """
        stored: list[tuple[RiskAlert, AlertRow | None]] = []
        moved: list[AlertRow] = []
        refused: list[tuple[str, ConsumerRecord, Exception]] = []
        ordered = [i for i in items if isinstance(i[2], Event)]
        ordered += [i for i in items if isinstance(i[2], RiskAlert)]
        async with self.gate.urgent(), self.sessions() as session, session.begin():
            for topic, record, parsed in ordered:
                try:
                    async with session.begin_nested():
                        if isinstance(parsed, RiskAlert):
                            row = await store_alert(
                                session,
                                parsed,
                                self.routing,
                                self.settings.public_url,
                                self.settings.bands,
                                self.settings.backfill_after,
                            )
                            stored.append((parsed, row))
                        else:
                            moved.extend(await store_account_event(session, parsed, self.routing))
                except DBAPIError as exc:
                    if not _refused_for_good(exc):
                        raise
                    refused.append((topic, record, exc))
        return stored, moved, refused


class HealthConsumer(_BatchConsumer):
    """``account-health``: per flush, the updates that matter, written in bulk.

    Fetches are gathered for ``alerts_health_flush_interval`` seconds (or
    ``alerts_health_batch`` records), then written in one go: per account, the
    newest update of each history interval (``alerts_history_interval`` of
    event time). At high rates almost every update is superseded, so the
    database and the CPU see about one update per busy account per flush
    instead of one per event. Only the updates kept are validated: a superseded
    one is dropped unread, as compaction of the topic would drop it. If a kept
    one is invalid, it goes to the DLQ and the next newest of its interval is used.
    """

    kind = "health"

    def __init__(
        self,
        settings: AlertsSettings,
        sessions: async_sessionmaker[Any],
        gate: WriteGate | None = None,
        on_resolved: Callable[[list[Alert]], None] | None = None,
    ) -> None:
        super().__init__(
            settings,
            sessions,
            [settings.topics.account_health],
            settings.health_consumer_group,
            max_records=settings.alerts_health_batch,
            gate=gate,
            flush_interval=settings.alerts_health_flush_interval,
        )
        #: Accounts per transaction: bounds how long an alert can wait for the writer lock
        #: (fewer, bigger transactions: each commit costs an fsync).
        self.chunk = 200
        #: Alerts whose condition the health showed over (after commit: stream them).
        self.on_resolved = on_resolved or (lambda alerts: None)

    def _interval_of(self, record: ConsumerRecord) -> tuple[datetime, datetime]:
        """(event time, start of its history interval); ValueError if it cannot be read."""
        try:
            as_of = parse_rfc3339(orjson.loads(record.value)["as_of"])
            return as_of, interval_start(as_of, self.settings.alerts_history_interval)
        except (ValueError, TypeError, KeyError, OverflowError, OSError) as exc:
            raise ValueError(f"not a health update: {exc}") from None

    async def _candidates(
        self, batch: Batch, invalid: list[tuple[str, ConsumerRecord, Exception]]
    ) -> list[list[tuple[str, ConsumerRecord]]]:
        """Records grouped by (account, history interval), oldest first in each group.

        The scorer publishes an account's updates in event-time order (``as_of``
        is the newest event time it has seen), so when the first and the last
        update of an account in this batch fall into the same interval, all of
        them do, and none of the others needs decoding. Otherwise (an interval
        boundary, a replay) every update of the account is decoded and sorted.
        """
        by_key: dict[Hashable, list[tuple[str, ConsumerRecord]]] = {}
        for tp, records in batch.items():
            for record in records:
                if record.value is None:
                    continue  # tombstone on the compacted topic: nothing to store
                key = record.key if record.key is not None else (tp, record.offset)
                by_key.setdefault(key, []).append((tp.topic, record))
        groups: list[list[tuple[str, ConsumerRecord]]] = []
        for n, records in enumerate(by_key.values()):
            if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # keep alerts and the API responsive
            if len(records) == 1:
                groups.append(records)
                continue
            with contextlib.suppress(ValueError):
                if self._interval_of(records[0][1])[1] == self._interval_of(records[-1][1])[1]:
                    groups.append(records)
                    continue
            split: dict[datetime, list[tuple[datetime, str, ConsumerRecord]]] = {}
            for topic, record in records:
                try:
                    as_of, begins = self._interval_of(record)
                except ValueError as exc:
                    invalid.append((topic, record, exc))
                    continue
                split.setdefault(begins, []).append((as_of, topic, record))
            for items in split.values():
                items.sort(key=lambda item: item[0])  # stable: offset order on equal times
                groups.append([(topic, record) for _, topic, record in items])
        return groups

    async def handle(self, batch: Batch) -> None:
        invalid: list[tuple[str, ConsumerRecord, Exception]] = []
        groups = await self._candidates(batch, invalid)
        kept: list[tuple[str, ConsumerRecord, HealthUpdate]] = []
        for n, group in enumerate(groups):
            if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
            for topic, record in reversed(group):  # newest first; older ones only if it is bad
                try:
                    update = HealthUpdate.model_validate_json(record.value)
                    _check_utc(update.as_of, "as_of")
                except ValueError as exc:
                    invalid.append((topic, record, exc))
                    continue
                kept.append((topic, record, update))
                break
        refused: list[tuple[str, ConsumerRecord, Exception]] = []
        rows = HealthRows((u for _, _, u in kept), self.settings.alerts_history_interval)
        points = self.settings.alerts_history_points
        resolved: list[AlertRow] = []
        try:
            # Transactions of bounded size, each behind any waiting alert (SQLite has
            # one writer). Offsets move only once all of them committed. Alerts the
            # health shows over are resolved in the same transaction as that health.
            for chunk in rows.chunks(self.chunk):
                async with self.gate.bulk(), self.sessions() as session, session.begin():
                    await write_health_rows(session, chunk, points)
                    resolved.extend(await resolve_cleared(session, chunk.latest))
        except DBAPIError as exc:
            if not _refused_for_good(exc):
                raise
            resolved = []
            refused = await self._store_one_by_one(kept)
        if resolved:
            for row in resolved:
                metrics.AUTO_RESOLVED.labels(row.reason).inc()
                log.info(
                    "alert resolved: condition cleared",
                    extra={
                        "alert_id": row.alert_id,
                        "account_id": row.account_id,
                        "reason": row.reason,
                    },
                )
            self.on_resolved([to_alert(row) for row in resolved])
        for topic, record, error in invalid + refused:
            await self._dead_letter(topic, record, error)
        await self._commit(batch)
        total = sum(len(records) for records in batch.values())
        metrics.HEALTH_UPDATES.labels("stored").inc(len(kept) - len(refused))
        metrics.HEALTH_UPDATES.labels("superseded").inc(total - len(kept) - len(invalid))

    async def _store_one_by_one(
        self, updates: list[tuple[str, ConsumerRecord, HealthUpdate]]
    ) -> list[tuple[str, ConsumerRecord, Exception]]:
        refused: list[tuple[str, ConsumerRecord, Exception]] = []
        interval = self.settings.alerts_history_interval
        async with self.gate.bulk(), self.sessions() as session, session.begin():
            for topic, record, update in updates:
                try:
                    async with session.begin_nested():
                        await store_health_batch(
                            session, [update], self.settings.alerts_history_points, interval
                        )
                except DBAPIError as exc:
                    if not _refused_for_good(exc):
                        raise
                    refused.append((topic, record, exc))
        return refused
