"""Event-time alignment of the co-partitioned event topics (timestamp synchronization).

Why: all five event topics are keyed by account and co-partitioned, so one
account's events live in partition ``i`` of each topic, but Kafka orders them
only *within* a topic. The core scores an account at its newest event time; if
a fetch brings a billing event from day 70 before the usage events of days
1-69 (a history POSTed in one request, a restart, a slow topic), those usage
events arrive "late" and the score of day 70 is computed before its history.

So, per partition index, the records buffered for the five topics are merged
by **event time** (``occurred_at``), as Kafka Streams merges by record
timestamp, and the merge may only move past a topic whose buffer is empty when
it is safe to:

* the topic is **behind** (the broker holds records of it this worker has not
  fetched yet): wait, because its next record may be older than anything held.
  Bounded by ``max_hold_s`` only as a safety valve (a partition that is never
  fetched must not stall the others for ever); the wait is counted;
* the topic is **caught up**: only records *published* more than
  ``max_idle_s`` ago may pass (Kafka Streams' ``max.task.idle.ms``). A record
  published together with ours on that topic (the same POST, the same producer
  batch) may not have been appended or fetched yet; after ``max_idle_s`` it
  has been. This is the only latency alignment adds, and only while some topic
  of the partition index has nothing buffered.

What is left unordered is lateness at the source (a system that sends
yesterday's tickets today): the core applies such events within what its
state keeps (see ``allowed_lateness_hours``).

Pure: no Kafka, no clock (``now`` is passed in), so it is tested directly.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_NEVER = float("-inf")


@dataclass
class Buffered:
    """One fetched record waiting to be merged."""

    ts: float  #: event time (epoch seconds), -inf when unreadable (poison goes first)
    published: float  #: record timestamp (epoch seconds), -inf when unknown
    seq: int  #: fetch order, to count reorderings
    record: Any


@dataclass
class AlignStats:
    """What alignment cost and did (exported as metrics by the app)."""

    waited_s: float = 0.0  #: partition-index seconds spent holding for a lagging topic
    reordered: int = 0  #: records emitted ahead of a record fetched before them
    forced: int = 0  #: holds given up after ``max_hold_s`` (should stay 0)


@dataclass
class EventTimeAligner:
    """Buffers fetched records per topic-partition and releases them in event-time order."""

    max_idle_s: float
    max_hold_s: float
    #: Fixed tie-break between topics for equal event times (e.g. the topic list order).
    topic_rank: Mapping[str, int]
    queues: dict[Any, deque[Buffered]] = field(default_factory=dict)
    stats: AlignStats = field(default_factory=AlignStats)
    _held_since: dict[int, float] = field(default_factory=dict)
    _seq: int = 0

    def add(self, tp: Any, items: Iterable[tuple[float, float, Any]]) -> None:
        """Buffer ``(event_time, published, record)`` triples of one topic-partition."""
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        seq = self._seq
        for ts, published, record in items:
            seq += 1
            queue.append(Buffered(ts, published, seq, record))
        self._seq = seq

    def pending(self) -> bool:
        return any(self.queues.values())

    def busy_indexes(self) -> set[int]:
        """Partition indexes with buffered records (their timers must not be swept yet)."""
        return {tp.partition for tp, queue in self.queues.items() if queue}

    def first_offsets(self) -> dict[Any, int]:
        """The first buffered offset per topic-partition (where to seek back to)."""
        return {tp: queue[0].record.offset for tp, queue in self.queues.items() if queue}

    def clear(self, tps: Iterable[Hashable] | None = None) -> None:
        if tps is None:
            self.queues.clear()
            self._held_since.clear()
            return
        for tp in tps:
            self.queues.pop(tp, None)

    def select(
        self,
        groups: Mapping[int, Sequence[Any]],
        behind: Callable[[Any], bool],
        now: float,
    ) -> list[tuple[Any, Any]]:
        """Release what can be released, in event-time order within each partition index.

        ``groups`` maps a partition index to its assigned topic-partitions;
        ``behind(tp)`` says whether the broker holds unfetched records of ``tp``;
        ``now`` is the wall clock (epoch seconds) that record timestamps are in.
        """
        selected: list[tuple[Any, Any]] = []
        stats = self.stats
        for index, tps in groups.items():
            queues = [(tp, q) for tp in tps if (q := self.queues.get(tp))]
            if not queues:
                self._held_since.pop(index, None)
                continue
            empty = [tp for tp in tps if not self.queues.get(tp)]
            forced = False
            if any(behind(tp) for tp in empty):
                since = self._held_since.setdefault(index, now)
                if now - since < self.max_hold_s:
                    continue
                forced = True
                stats.forced += 1
            held = self._held_since.pop(index, None)
            if held is not None:
                stats.waited_s += now - held
            cutoff = now - self.max_idle_s if empty else float("inf")
            rank = self.topic_rank
            heap = [
                (q[0].ts, rank.get(tp.topic, 0), q[0].seq, i) for i, (tp, q) in enumerate(queues)
            ]
            heapq.heapify(heap)
            top_seq = 0
            while heap:
                i = heap[0][3]
                tp, queue = queues[i]
                head = queue[0]
                if head.published > cutoff:
                    break  # a sibling on a caught-up topic may still be in flight
                heapq.heappop(heap)
                queue.popleft()
                selected.append((tp, head.record))
                if head.seq < top_seq:
                    stats.reordered += 1
                else:
                    top_seq = head.seq
                if queue:
                    heapq.heappush(heap, (queue[0].ts, rank.get(tp.topic, 0), queue[0].seq, i))
                    continue
                if not forced and behind(tp):
                    break  # cannot order past this topic's unfetched records
                cutoff = min(cutoff, now - self.max_idle_s)
        return selected
