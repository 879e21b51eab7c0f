"""A Faust consumer that delivers whole fetches to a batch handler.

Why: Faust's per-message path (``Consumer._drain_messages``) wraps every
record in a ``Message``, tracks it in a weak set, and awaits
``wait_first(callback(message), suspend_flow.wait())`` -- which creates
tasks per record -- before the conductor decodes it into an ``Event`` and
queues it for an agent's stream. Profiles put that at 100-200 us per record
on this machine, i.e. the ~5% of bare aiokafka the issue describes.

This subclass keeps everything else Faust does (group membership, the
partition assignor with table co-partitioning, changelog recovery, standby
tables, offset commits, the web server) and replaces only the drain loop:

* records of the **batch topics** (the five event topics) are grouped per
  fetch and handed to ``batch_handler`` in one call; their offsets are then
  acked in bulk into Faust's own ack bookkeeping, so Faust's commit machinery
  (which flushes the producer first) commits them: at-least-once, unchanged;
* within one partition index, records of the five topics are merged in
  **event-time** order, holding back while a topic the broker still has
  records for is not fetched yet (timestamp synchronization, see
  :mod:`services.scorer.alignment`): without this, a fetch that returns a
  billing event of day 70 before the usage of days 1-69 would score the
  history backwards and drop it as late;
* records of a table changelog during an active recovery are written to the
  table's store a whole fetch at a time by
  :class:`~services.scorer.recovery.BatchRecovery` (which also makes recovery
  read up to the high-water mark the fetch reports); records of every other
  topic (standby changelogs, ...) take Faust's normal per-message path.

The batch handler runs under a lock that rebalancing waits for
(:meth:`wait_empty`), so no batch is half-done when partitions move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from aiokafka import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from services.scorer.alignment import EventTimeAligner, ackable
from services.scorer.core.events import event_time_of
from services.scorer.recovery import BatchRecovery

log = logging.getLogger(__name__)

#: The handler gets records in processing order, as (TP, record) pairs.
BatchHandler = Callable[[Sequence[tuple[TP, Any]]], Awaitable[object]]

IdleHandler = Callable[[], Awaitable[object]]


class BatchingConsumer(faust_aiokafka.Consumer):
    """aiokafka-driver Faust consumer with a batch fast path for selected topics."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return PromptFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def batch_topics(self) -> frozenset[str]:
        """The app's batch topics, known before the first fetch.

        Not set later by an app task: with a fast recovery the fetcher can
        deliver event records before such a task runs, and records of a topic
        not (yet) known as a batch topic took Faust's per-message path, where
        no agent reads them ("Cannot put on Topic channel before aiter"): they
        were dropped unacked, and a restarted worker skipped them or stalled.
        Until ``batch_handler`` is wired, batch records just stay buffered.
        """
        return getattr(self.app, "batch_topics", frozenset())

    batch_handler: BatchHandler | None = None
    after_fetch: IdleHandler | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_lock = asyncio.Lock()
        self._acked_upto: dict[TP, int] = {}
        #: Per topic-partition, the highest offset processed since the last seek: the
        #: aligner may process records beyond one it still holds, and those are acked
        #: (with everything before them) once the held one is processed.
        self._processed_max: dict[TP, int] = {}
        self._fetched_upto: dict[TP, int] = {}
        idle_ms = getattr(self.app, "max_task_idle_ms", 100.0)
        hold_s = getattr(self.app, "max_hold_s", 30.0)
        self.aligner = EventTimeAligner(
            max_idle_s=idle_ms / 1000.0, max_hold_s=hold_s, topic_rank={}
        )

    async def wait_empty(self) -> None:
        # Rebalance/recovery/shutdown: let an in-flight batch finish (its
        # offsets get acked), drop what is buffered but unprocessed and seek
        # back to it (see _rewind: a partition without a committed offset is
        # *not* fetched again by Faust's seek-to-committed; the restart test
        # lost a never-committed partition's first 440 records this way),
        # then Faust's own wait.
        async with self.batch_lock:
            await self._rewind({})
        await super().wait_empty()

    def _clear_pending(self) -> None:
        self.aligner.clear()
        self._fetched_upto.clear()
        self._processed_max.clear()

    async def perform_seek(self) -> None:
        """Faust's seek to committed offsets, and to the beginning where there is none.

        aiokafka's ``seek_to_committed`` leaves a partition without a committed
        offset at whatever position it has, and that position may already be
        past records fetched (and dropped) while the partition was paused for
        table recovery. The restart test saw a never-committed partition start
        at offset 440, and another never consumed at all. ``earliest`` is this
        app's reset policy, so a partition with no commit that nothing was
        processed from yet starts at its beginning, explicitly.
        """
        await super().perform_seek()
        committed = self._committed_offset
        fresh = [
            tp
            for tp in self.assignment()
            if tp.topic in self.batch_topics
            and committed.get(tp) is None
            and tp not in self._acked_upto
        ]
        if fresh:
            await self._thread.seek_to_beginning(
                *(TopicPartition(tp.topic, tp.partition) for tp in fresh)
            )
            for tp in fresh:
                self._read_offset[tp] = None
                self._fetched_upto.pop(tp, None)
                self._processed_max.pop(tp, None)
            self.aligner.clear(fresh)

    async def _rewind(self, dropped: Any, clear: bool = True) -> None:
        """Seek back to the first record we drop unprocessed (buffered or just fetched).

        Upstream relies on ``perform_seek`` (seek to the committed offset) to
        fetch dropped records again, but aiokafka's ``seek_to_committed``
        leaves a partition that has *no* committed offset yet where it is, so
        records dropped there were skipped for good: a restarted worker never
        processed them and its commits stalled on the gap (seen in the restart
        test). Only partitions still assigned are rewound; a partition that
        moves gets its position from the committed offset (or the reset policy).
        """
        first: dict[TP, int] = {}
        if clear:
            first.update(self.aligner.first_offsets())
        for tp, recs in dropped.items():
            if tp.topic in self.batch_topics and recs:
                offset = recs[0].offset
                if offset < first.get(tp, offset + 1):
                    first[tp] = offset
        if clear:
            self._clear_pending()
        assigned = self.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                log.info("rewinding unprocessed records", extra={"tp": str(tp), "offset": offset})
                self._fetched_upto.pop(tp, None)
                self._processed_max.pop(tp, None)
                await self.seek(tp, offset)

    def _behind(self, tp: TP) -> bool:
        """Does the broker hold records of ``tp`` we have not fetched yet?"""
        highwater = self.highwater(tp)
        if highwater is None:
            return False
        upto = self._fetched_upto.get(tp)
        if upto is None:
            upto = self._committed_offset[tp] or 0
        return upto < highwater

    def _select(self, now: float) -> list[tuple[TP, Any]]:
        """Take buffered records in event-time order, per partition index (see alignment)."""
        groups: dict[int, list[TP]] = {}
        batch_topics = self.batch_topics
        if len(self.aligner.topic_rank) != len(batch_topics):
            self.aligner.topic_rank = {t: i for i, t in enumerate(sorted(batch_topics))}
        for tp in self.assignment():
            if tp.topic in batch_topics:
                groups.setdefault(tp.partition, []).append(tp)
        client = self._thread._ensure_consumer()
        observed = {}
        for tps in groups.values():
            for tp in tps:
                # aiokafka's wall-clock time of the last fetch response for tp.
                polled = client.last_poll_timestamp(tp)
                if polled is not None:
                    observed[tp] = polled / 1000.0
        return self.aligner.select(groups, self._behind, now, observed)

    def busy_partitions(self) -> set[int]:
        """Partition indexes still catching up: records buffered, or unfetched on the broker.

        The timer sweep leaves them alone (see ``BatchProcessor.sweep``).
        """
        busy = self.aligner.busy_indexes()
        batch_topics = self.batch_topics
        for tp in self.assignment():
            if tp.topic in batch_topics and tp.partition not in busy and self._behind(tp):
                busy.add(tp.partition)
        return busy

    def _buffer(self, tp: TP, recs: Sequence[Any]) -> None:
        """Queue fetched records of an event topic with their event and publish times."""
        self.aligner.add(
            tp,
            (
                (
                    rec.key,
                    event_time_of(rec.value),
                    rec.timestamp / 1000.0 if rec.timestamp and rec.timestamp > 0 else _NEVER,
                    rec,
                )
                for rec in recs
            ),
        )

    def _ack_batch(self, tp: TP, first: int, last: int) -> None:
        """Mark ``first..last`` as acked in Faust's bookkeeping, filling gaps.

        Offsets between batches that the fetch skipped (compaction, control
        records) do not exist, so acking them is correct and keeps Faust's
        "consecutive acked offsets" commit rule from stalling on a gap.
        """
        committed = self._committed_offset[tp]
        upto = self._acked_upto.get(tp)
        if upto is not None and first < upto:  # rewound (seek after rebalance)
            upto = None
        lo = first
        if upto is not None and upto < lo:
            lo = upto
        elif upto is None and committed is not None and committed < lo:
            lo = committed
        if committed is not None and lo < committed:
            lo = committed
        if lo > last:
            return
        offsets = range(lo, last + 1)
        self._acked[tp].extend(offsets)
        self._acked_index[tp].update(offsets)
        self._n_acked += len(offsets)
        self._acked_upto[tp] = last + 1

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - replaced loop
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        monitor = self.app.monitor
        recovery = getattr(self.app.tables, "recovery", None)
        restore = recovery if isinstance(recovery, BatchRecovery) else None
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if self.should_stop:
                    break
                if records and not self.flow_active:
                    await self._rewind(records)
                    await self.perform_seek()
                    records = None
                generation = self.app.consumer_generation_id
                if records:
                    for tp, recs in records.items():
                        if not (active is None or tp in active or tp in self._buffered_partitions):
                            if tp.topic in self.batch_topics and recs:
                                await self._rewind({tp: recs}, clear=False)
                            continue
                        r_offset = read_offset[tp]
                        if r_offset is not None and recs and recs[0].offset < r_offset:
                            recs = [rec for rec in recs if rec.offset >= r_offset]
                        if not recs:
                            continue
                        if tp.topic in self.batch_topics:
                            upto = self._fetched_upto.get(tp)
                            if upto is not None and recs[0].offset < upto:  # refetched
                                recs = [rec for rec in recs if rec.offset >= upto]
                            if recs:
                                self._buffer(tp, recs)
                                self._fetched_upto[tp] = recs[-1].offset + 1
                            continue
                        if restore is not None:
                            store = restore.batch_store(tp)
                            if store is not None:  # table recovery in batches
                                await restore.restore_batch(tp, store, recs, self)
                                read_offset[tp] = recs[-1].offset
                                continue
                        for rec in recs:  # upstream per-message path (standbys etc.)
                            if self.app.consumer_generation_id != generation:
                                break
                            offset = rec.offset
                            r_offset = read_offset[tp]
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(rec.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            await callback(self._to_message(tp, rec))
                            read_offset[tp] = offset
                if restore is not None and restore.in_recovery:
                    restore.signal_if_complete()
                if self.aligner.pending() and self.batch_handler is not None and self.flow_active:
                    async with self.batch_lock:
                        now = time.monotonic()
                        selected = self._select(time.time())
                        if selected and self.app.consumer_generation_id != generation:
                            # A rebalance began after this fetch: process nothing,
                            # fetch it again (from where it starts, see _rewind).
                            firsts: dict[TP, list[Any]] = {}
                            for tp, rec in selected:
                                firsts.setdefault(tp, [rec])
                            await self._rewind(firsts)
                            selected = []
                        if selected and self.app.consumer_generation_id == generation:
                            await self.batch_handler(selected)
                            ranges: dict[TP, list[int]] = {}
                            for tp, rec in selected:
                                span = ranges.get(tp)
                                if span is None:
                                    ranges[tp] = [rec.offset, rec.offset]
                                elif rec.offset < span[0]:
                                    span[0] = rec.offset
                                elif rec.offset > span[1]:
                                    span[1] = rec.offset
                            processed_max = self._processed_max
                            for tp, (first, last) in ranges.items():
                                # Never commit past a record the aligner still holds.
                                done = processed_max.get(tp)
                                processed_max[tp] = last if done is None else max(done, last)
                                last = ackable(first, last, done, self.aligner.safe_upto(tp))
                                if last >= first:
                                    self._ack_batch(tp, first, last)
                                    read_offset[tp] = last
                                monitor.stream_inbound_time[tp] = now
                        commit_every = self._commit_every
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                if self.after_fetch is not None:
                    async with self.batch_lock:
                        await self.after_fetch()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


_NEVER = float("-inf")


class PromptFetchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with a configurable fetch wait.

    Faust hard-codes ``fetch_max_wait_ms=1500``. A broker that holds a fetch
    until that wait expires when too little data is ready (the embedded broker
    always does; Kafka does with ``fetch.min.bytes`` > 1) adds up to 1.5 s to
    every alert. Measured with ``python -m benchmarks.fetch_wait``: 1,500 ms
    wait -> 425 ms median delivery delay, 20 ms -> 7 ms. A short wait only
    costs idle fetch requests.
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # aiokafka reads it when the consumer starts (its Fetcher), which
            # has not happened yet; there is no public setter.
            consumer._fetch_max_wait_ms = int(wait_ms)
        return consumer


class BatchingTransport(faust_aiokafka.Transport):
    """The aiokafka transport, with :class:`BatchingConsumer` as its consumer."""

    Consumer: ClassVar[type[BatchingConsumer]] = BatchingConsumer
