"""Batch processing: records in, state + outputs out. The hot path of the scorer.

Faust delivers nothing here event by event: :mod:`services.scorer.consumer`
hands over a whole fetch (``{TP: [ConsumerRecord, ...]}``) and this module

1. parses every record with the core's fast parser (poison -> ``<topic>.dlq``),
2. applies it to the account state through the pure core,
3. publishes outputs (health on meaningful change, alerts, training examples),
4. writes each touched account's state **once per batch** to the Faust table
   and its changelog (coalesced writes: a busy account costs one changelog
   record per batch, not one per event).

Outputs are enqueued before the state writes, and the caller acks the offsets
only after this returns; Faust flushes the producer before committing. So a
crash can at worst re-emit outputs with the same stable ids (at-least-once),
never lose them.

The module knows nothing about Faust: the store is a mapping and the producer a
``send`` coroutine, so the same code is exercised by tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from healthstream.deadletter import dead_letter_headers
from healthstream.settings import Topics
from services.scorer.core import AccountState, InvalidEvent, Outcome, ScoringEngine, parse_event
from services.scorer.metrics import ScorerMetrics

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
_NO_TIME = float("-inf")
#: (topic, partition, key, value, headers). The partition is always explicit:
#: every output is keyed by account and all topics share the event topics'
#: partition count, so an account's outputs go to the partition its events
#: came from (no per-record murmur2 in Python, one producer batch per partition).
OutRecord = tuple[str, int, bytes | None, bytes, Headers | None]
PublishFn = Callable[[list[OutRecord]], Awaitable[Any]]


class Record(Protocol):
    """What we read from an aiokafka ``ConsumerRecord``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


class TopicPartition(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...


@dataclass
class AccountIndex:
    """Which accounts live in which partition, for the timer sweep.

    A deque per partition gives a cheap round-robin cursor: each sweep pops at
    most N keys from the left and pushes them back on the right.
    """

    queues: dict[int, deque[bytes]] = field(default_factory=dict)
    known: dict[bytes, int] = field(default_factory=dict)

    def add(self, key: bytes, partition: int) -> None:
        if self.known.get(key) == partition:
            return
        self.known[key] = partition
        self.queues.setdefault(partition, deque()).append(key)

    def drop_partitions(self, partitions: set[int]) -> None:
        for partition in partitions:
            for key in self.queues.pop(partition, ()):
                self.known.pop(key, None)


class BatchProcessor:
    """Applies batches of raw event records to account state through the core."""

    def __init__(
        self,
        engine: ScoringEngine,
        topics: Topics,
        store: MutableMapping[bytes, bytes],
        changelog_topic: str,
        publish: PublishFn,
        metrics: ScorerMetrics,
        clock: Callable[[], float] = time.time,
        cache_accounts: int = 20_000,
        max_future_skew_s: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.store = store
        self.changelog_topic = changelog_topic
        self.publish = publish
        self.metrics = metrics
        self.clock = clock
        self.index = AccountIndex()
        #: Decoded states of recently touched accounts (LRU, at most
        #: ``cache_accounts``): decoding costs as much as applying an event, and
        #: busy accounts appear in batch after batch. Always equal to the store's
        #: bytes after a batch, because both are written together.
        self.cache: dict[bytes, AccountState] = {}
        self.cache_accounts = cache_accounts
        #: Faust's memory store remembers the partition of recovered keys so it
        #: can drop them when a partition moves away; keys we write get the same.
        self.key_partitions: MutableMapping[bytes, int] | None = None
        self.max_future_skew_s = max_future_skew_s
        self.monotonic = monotonic
        #: Event-time clock per partition, for the timer sweep: the newest event time
        #: applied there, each bounded by its record's publish time (+ skew), so no
        #: event, however it is dated, moves another account's timers ahead of the
        #: wall clock of the producers.
        self.watermarks: dict[int, float] = {}
        #: monotonic() when each account's state was last written by an event; an
        #: account not written since this process started counts from its start.
        self.touched: dict[bytes, float] = {}
        self.started = monotonic()
        self.lateness_hours = engine.scorecard.lateness_hours
        self._band_of: dict[bytes, str] = {}
        self._band_counts: dict[str, int] = {"green": 0, "yellow": 0, "red": 0}
        self._count_generation = 0
        self.events_applied = 0
        self.records_seen = 0
        #: monotonic() when the first batch started / the last batch ended.
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None

    # ------------------------------------------------------------------ batch
    async def process(self, batch: Sequence[tuple[TopicPartition, Record]]) -> int:
        """Process records in the given order; returns how many were consumed (incl. DLQ'd)."""
        engine_apply = self.engine.apply
        store_get = self.store.get
        from_bytes = AccountState.from_bytes
        watermarks = self.watermarks
        cache = self.cache
        states: dict[bytes, AccountState | None] = {}
        home: dict[bytes, int] = {}
        outputs: list[OutRecord] = []
        by_type: dict[str, int] = {}
        latencies: list[float] = []
        duplicates = late = 0
        now_wall = self.clock()
        if self.first_batch_at is None:
            self.first_batch_at = time.monotonic()
        collect = self._collect
        latency_add = latencies.append
        max_skew = self.max_future_skew_s
        for tp, record in batch:
            partition = tp.partition
            raw = record.value
            try:
                event = parse_event(raw if raw is not None else b"")
            except InvalidEvent as exc:
                outputs.append(self._dead_letter(record, exc, _stage_of(raw), exc.field))
                continue
            except Exception as exc:  # anything the parser did not foresee is poison too
                outputs.append(self._dead_letter(record, exc, "schema", None))
                continue
            ts = event.ts
            published = record.timestamp
            bound = published / 1000.0 + max_skew if published and published > 0 else ts
            if ts > bound:
                ahead = ValueError(
                    f"occurred_at is {ts - bound + max_skew:.0f} s after the record was "
                    f"published (more than {max_skew:.0f} s ahead: it cannot have happened yet)"
                )
                outputs.append(self._dead_letter(record, ahead, "future", "occurred_at"))
                continue
            account_id = event.account_id
            key = account_id.encode()
            state = states.get(key)
            if state is None and key not in states:
                state = cache.get(key)
                if state is None:
                    stored = store_get(key)
                    state = from_bytes(stored) if stored is not None else None
            try:
                outcome = engine_apply(state, event)
            except Exception as exc:  # poison by content: the worker must keep running
                log.warning(
                    "event processing failed; sent to DLQ",
                    extra={"event_id": event.event_id, "account_id": account_id},
                    exc_info=True,
                )
                outputs.append(self._dead_letter(record, exc, "processing", None))
                continue
            if outcome.duplicate:
                duplicates += 1
                continue
            if outcome.late:
                late += 1
                too_old = ValueError(
                    f"occurred_at is more than {self.lateness_hours:g} h before the account's "
                    "newest event: older than what its state keeps"
                )
                outputs.append(self._dead_letter(record, too_old, "late", "occurred_at"))
                continue
            states[key] = outcome.state
            home[key] = partition
            kind = event.type
            by_type[kind] = by_type.get(kind, 0) + 1
            latency_add(now_wall - ts)
            # ts <= bound here (later events were dead-lettered above): the clock is capped.
            if ts > watermarks.get(partition, _NO_TIME):
                watermarks[partition] = ts
            # Most events publish nothing (the core's fast path): skip the collect call.
            if outcome.health is not None or outcome.alerts or outcome.examples:
                collect(key, partition, account_id, outcome, outputs, event.event_id)
        touched = {k: v for k, v in states.items() if v is not None}
        await self._flush(outputs, touched, home)
        stamp = self.monotonic()
        for key in touched:
            self.touched[key] = stamp
        n = len(batch)
        self._record_metrics(n, by_type, latencies, duplicates, late)
        self.last_batch_at = time.monotonic()
        return n

    # ------------------------------------------------------------------ timers
    async def sweep(
        self, max_accounts: int, busy: Collection[int] = (), quiet_s: float = 0.0
    ) -> int:
        """Tick up to ``max_accounts`` accounts at their partition's event-time clock.

        Skipped: partitions in ``busy`` (records buffered, e.g. a backlog being
        merged) and accounts an event touched less than ``quiet_s`` ago. Both
        guard the same thing: an account whose history is still arriving (a
        backfill, a restart's catch-up) is not ticked to a time its own events
        have not reached yet, which would declare it inactive half-way.
        """
        ticked = 0
        states: dict[bytes, AccountState] = {}
        home: dict[bytes, int] = {}
        outputs: list[OutRecord] = []
        partitions = [p for p in self.index.queues if p in self.watermarks and p not in busy]
        if not partitions:
            return 0
        share = max(1, max_accounts // len(partitions))
        quiet_before = self.monotonic() - quiet_s
        touched = self.touched
        started = self.started
        for partition in partitions:
            queue = self.index.queues[partition]
            now = self.watermarks[partition]
            for _ in range(min(share, len(queue))):
                key = queue.popleft()
                queue.append(key)
                if touched.get(key, started) > quiet_before:
                    continue
                stored = self.store.get(key)
                if stored is None:
                    continue
                cached = self.cache.get(key)
                state = cached if cached is not None else AccountState.from_bytes(stored)
                try:
                    outcome = self.engine.tick(state, now)
                except Exception:
                    log.exception("timer tick failed", extra={"account_id": key.decode()})
                    continue
                ticked += 1
                outcome.state.scored = None  # see _flush; a tick's score is never reused
                before = len(outputs)
                self._collect(key, partition, key.decode(), outcome, outputs)
                new_bytes = outcome.state.to_bytes()
                if len(outputs) != before or new_bytes != stored:
                    states[key] = outcome.state
                    home[key] = partition
        await self._flush(outputs, states, home)
        self.metrics.sweep_accounts.inc(ticked)
        return ticked

    # ------------------------------------------------------------------ helpers
    def _collect(
        self,
        key: bytes,
        partition: int,
        account_id: str,
        outcome: Outcome,
        outputs: list[OutRecord],
        event_id: str | None = None,
    ) -> None:
        topics = self.topics
        health = outcome.health
        if health is not None:
            outputs.append(
                (topics.account_health, partition, key, health.to_json_bytes(account_id), None)
            )
            self._set_band(key, health.band)
        for alert in outcome.alerts:
            outputs.append((topics.risk_alerts, partition, key, alert.to_json_bytes(), None))
            self.metrics.alerts.labels(alert.reason).inc()
            # Rare (one per rule firing): the line that links an event to its alert.
            log.info(
                "risk alert raised",
                extra={
                    "event_id": event_id,
                    "account_id": account_id,
                    "alert_id": alert.alert_id,
                    "reason": alert.reason,
                },
            )
        for example in outcome.examples:
            outputs.append(
                (topics.training_examples, partition, key, example.to_json_bytes(), None)
            )
        if outcome.examples:
            self.metrics.examples.inc(len(outcome.examples))

    async def _flush(
        self,
        outputs: list[OutRecord],
        states: dict[bytes, AccountState],
        home: dict[bytes, int],
    ) -> None:
        """Enqueue outputs first, then one state write per touched account."""
        health_topic = self.topics.account_health
        published = sum(1 for out in outputs if out[0] == health_topic)
        changelog = self.changelog_topic
        store = self.store
        index_add = self.index.add
        key_partitions = self.key_partitions
        cache = self.cache
        for key, state in states.items():
            value = state.to_bytes()
            # The core's last score (kept for its engagement-only re-score) is ~2 KB of
            # objects per account: do not let it live on in the cross-batch cache.
            state.scored = None
            partition = home[key]
            store[key] = value
            cache.pop(key, None)
            cache[key] = state  # most recently used last
            index_add(key, partition)
            if key_partitions is not None:
                key_partitions[key] = partition
            outputs.append((changelog, partition, key, value, None))
        excess = len(cache) - self.cache_accounts
        if excess > 0:
            for key in list(itertools.islice(cache, excess)):
                del cache[key]
        if outputs:
            await self.publish(outputs)
        if published:
            self.metrics.health_updates.inc(published)

    def _dead_letter(
        self, record: Record, exc: BaseException, stage: str, field_name: str | None
    ) -> OutRecord:
        self.metrics.dlq.labels(stage).inc()
        headers = dead_letter_headers(
            record.topic,
            stage,
            exc,
            partition=record.partition,
            offset=record.offset,
            field_name=field_name,
        )
        return (
            Topics.dlq(record.topic),
            record.partition,
            record.key,
            record.value or b"",
            headers,
        )

    def forget_unowned(self, owned: set[int]) -> None:
        """Stop counting, per band, the accounts of partitions this worker no longer owns."""
        key_partitions = self.key_partitions or {}
        self.touched = {k: v for k, v in self.touched.items() if key_partitions.get(k) in owned}
        counts = self._band_counts
        for key, band in list(self._band_of.items()):
            if key_partitions.get(key) not in owned:
                del self._band_of[key]
                counts[band] -= 1
        self._publish_band_gauges()

    async def count_recovered_bands(self, keys: Iterable[bytes]) -> None:
        """Count, per band, recovered accounts that no event has touched yet.

        Why: the band gauge is kept up to date as scores are published; after a
        restart or a rebalance it would start from zero and show only accounts
        that changed since, so the CS-ops "accounts per band" panel would dip for
        hours on a quiet portfolio. Runs beside processing (it yields), so
        readiness does not wait for it; an account processed meanwhile is
        already counted and skipped. A newer call (the next rebalance) stops an
        older one.
        """
        self._count_generation += 1
        generation = self._count_generation
        published_band_of = AccountState.published_band_of
        for n, key in enumerate(keys):
            if n % 2000 == 1999:
                self._publish_band_gauges()
                await asyncio.sleep(0)
                if generation != self._count_generation:
                    return
            if key in self._band_of:
                continue
            raw = self.store.get(key)
            if raw is None:
                continue
            try:
                band = published_band_of(raw)
            except (ValueError, IndexError):
                continue  # a state this worker cannot read fails loudly when it is applied
            if band is not None:
                self._set_band(key, band)
        self._publish_band_gauges()

    def _publish_band_gauges(self) -> None:
        for band, count in self._band_counts.items():
            self.metrics.bands.labels(band).set(count)

    def _set_band(self, key: bytes, band: str) -> None:
        old = self._band_of.get(key)
        if old == band:
            return
        counts = self._band_counts
        if old is not None:
            counts[old] = counts.get(old, 0) - 1
        counts[band] = counts.get(band, 0) + 1
        self._band_of[key] = band

    def _record_metrics(
        self,
        n: int,
        by_type: dict[str, int],
        latencies: list[float],
        duplicates: int,
        late: int,
    ) -> None:
        metrics = self.metrics
        self.records_seen += n
        metrics.batch_size.observe(n)
        for event_type, count in by_type.items():
            metrics.events.labels(event_type).inc(count)
            self.events_applied += count
        observe = metrics.latency.observe
        for latency in latencies:
            observe(latency if latency > 0 else 0.0)
        if duplicates:
            metrics.duplicates.inc(duplicates)
        if late:
            metrics.late.inc(late)
        self._publish_band_gauges()


def _stage_of(raw: bytes | None) -> str:
    """``decode`` if the bytes are not JSON at all, else ``schema`` (valid JSON, bad event)."""
    if raw is None:
        return "decode"
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "decode"
    return "schema"
