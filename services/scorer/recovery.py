"""Table recovery in batches, complete up to the high-water mark the fetches report.

Why this exists (measured, see ``docs/scorer.md``):

* **Speed.** Faust replays a changelog one message at a time: every record
  becomes a ``Message`` and an ``Event``, is queued, and
  ``Recovery._slurp_changelogs`` rebuilds a ``Counter`` of remaining offsets
  per record. That is ~2,000 records/s on this machine: 100,000 accounts took
  62 s. Here the records of a whole fetch are written straight into the
  table's memory store (``dict`` assignments), ~1 us per record.
* **Completeness on any broker.** Faust decides when recovery is done by
  comparing the offsets read with the end offsets it asked for once with
  ListOffsets. The embedded broker (tansu 0.6) answers ListOffsets(latest)
  with the *base offset of the last record batch + 1*, so Faust stopped
  before the rest of that batch and a restarted scorer lost those accounts.
  (seen in the restart test: even 0 for a partition holding records), so
  Faust stopped early -- or never started reading that partition -- and a
  restarted scorer lost accounts. Every fetch response carries the
  partition's high-water mark, on tansu as on Kafka; recovery here is done
  only when every partition has been read up to a high-water mark reported by
  a fetch *since this assignment* (and up to upstream's ListOffsets answer).
  On real Kafka both numbers are the same, so nothing depends on the quirk;
  the price is one fetch round trip for an empty changelog partition.

Everything else stays Faust's: the assignment, which changelog partitions are
active, where reading starts (``_build_offsets``/seek), pausing and resuming
partitions, ``on_recovery_completed`` (which drops keys of partitions we no
longer own) and the table's ``on_recover`` callbacks. Only tables registered in
:attr:`ScorerApp.batch_restore_tables` (raw-bytes keys and values in a memory
store, so a record's bytes *are* the stored value) take this path; standby
partitions and any other table keep Faust's per-message path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, cast

from faust.stores.memory import Store as MemoryStore
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

log = logging.getLogger(__name__)


class ChangelogRecord(Protocol):
    """What we read from an aiokafka ``ConsumerRecord`` of a changelog."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class OffsetSource(Protocol):
    """The consumer's view of a partition: fetch high-water mark and position."""

    def highwater(self, tp: TP) -> int | None: ...
    async def position(self, tp: TP) -> int | None: ...


class BatchRecovery(Recovery):
    """Faust's ``Recovery`` service with a batch path for selected tables."""

    #: Records written by the batch path since the service started (for logs/benchmarks).
    restored_records: int = 0

    def batch_store(self, tp: TP) -> MemoryStore | None:
        """The memory store to write ``tp``'s records into, if ``tp`` takes the batch path.

        Only while an active recovery is running, only for active (not
        standby) partitions, only for opted-in tables.
        """
        if not self.in_recovery or tp not in self.active_tps:
            return None
        return self._opted_in_store(tp)

    def _opted_in_store(self, tp: TP) -> MemoryStore | None:
        table = self.tp_to_table.get(tp)
        if table is None:
            return None
        names: frozenset[str] = getattr(self.app, "batch_restore_tables", frozenset())
        if table.name not in names:
            return None
        store = cast(Any, table).data
        return store if isinstance(store, MemoryStore) else None

    def need_recovery(self) -> bool:
        """Upstream's test, and: every opted-in partition is read to a *fetched* high-water mark.

        Upstream compares with ListOffsets answers only. tansu 0.6 answers
        ListOffsets(latest) with the last batch's base offset + 1, and even 0
        for a partition that holds records (seen in the restart test), so
        upstream declared recovery done before reading a partition at all. The
        consumer's ``highwater(tp)`` is the value of the latest fetch response;
        aiokafka forgets it on every new assignment, so ``None`` means "not
        fetched since this rebalance" and keeps recovery going until a fetch
        (empty ones included) reports it.
        """
        return super().need_recovery() or bool(self.unverified())

    def unverified(self) -> list[TP]:
        """Opted-in active partitions not yet read up to a fetched high-water mark."""
        consumer = self.app.consumer
        offsets = self.active_offsets
        behind = []
        for tp in self.active_tps:
            if self._opted_in_store(tp) is None:
                continue
            try:
                highwater = consumer.highwater(tp)
            except AssertionError:  # aiokafka: not assigned (any more) -- rebalancing
                highwater = None
            offset = offsets.get(tp)
            if highwater is None or offset is None or offset < highwater - 1:
                behind.append(tp)
        return behind

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        """Upstream's ListOffsets highwaters, never below an offset already read.

        After a rebalance, a partition we keep has been read (by fetch
        high-water mark) beyond what tansu's ListOffsets may answer; upstream's
        consistency check (offset > highwater) would then crash the worker.
        """
        await super()._build_highwaters(consumer, tps, destination, title)
        if destination is self.active_highwaters:
            for tp in tps:
                offset = self.active_offsets.get(tp)
                if offset is not None and offset > destination[tp]:
                    destination[tp] = offset

    async def restore_batch(
        self,
        tp: TP,
        store: MemoryStore,
        records: Sequence[ChangelogRecord],
        consumer: OffsetSource,
    ) -> None:
        """Apply one fetch's records of ``tp`` to ``store``, then check whether recovery is done."""
        offsets = self.active_offsets
        seen = offsets.get(tp)
        data = store.data
        key_partition = store._key_partition
        partition = tp.partition
        last = seen if seen is not None else -1
        applied = 0
        for record in records:
            offset = record.offset
            if offset <= last:
                continue  # refetched after a seek: already applied
            last = offset
            key = record.key
            value = record.value
            if value is None:  # tombstone: Faust's memory store deletes the key
                data.pop(key, None)
                key_partition.pop(key, None)
            else:
                data[key] = value
                key_partition[key] = partition
            applied += 1
        self.restored_records += applied
        highwater = consumer.highwater(tp)
        if highwater is not None:
            # Faust's highwaters are "last offset" (end - 1). Raise, never lower:
            # ListOffsets may lag behind the fetch (tansu), never lead it.
            if tp in self.active_highwaters and highwater - 1 > self.active_highwaters[tp]:
                self.active_highwaters[tp] = highwater - 1
            if last + 1 < highwater:
                # Offsets the log no longer holds (compaction, control batches)
                # do not come back as records; the consumer's position has
                # moved past them.
                position = await consumer.position(tp)
                if position is not None and position >= highwater:
                    last = highwater - 1
        if seen is None or last > seen:
            offsets[tp] = last

    def signal_if_complete(self) -> None:
        """Wake ``_restart_recovery`` when every active partition is read to its high-water mark.

        Upstream does this in ``_slurp_changelogs`` after each queued message;
        batch-restored records never reach that queue, so the consumer calls
        this after every fetch (an empty fetch can be the one that reports a
        partition's high-water mark). ``_set_recovery_ended`` is left to
        ``on_recovery_completed`` (upstream's 5 s timeout path re-signals until
        then), so a wake-up lost to a race is retried, not fatal.
        """
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self.signal_recovery_end.set()


class ScorerTableManager(TableManager):
    """Faust's table manager with :class:`BatchRecovery` and no fixed start-up sleep.

    Upstream sleeps 1 s in ``on_start`` so that agents starting concurrently can
    still define tables; the scorer defines its only table before the app
    starts, so the sleep is pure start-up latency.
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BatchRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
