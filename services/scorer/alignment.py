"""Event-time alignment of the co-partitioned event topics (timestamp synchronization).

Why: all five event topics are keyed by account and co-partitioned, so one
account's events live in partition ``i`` of each topic, but Kafka orders them
only *within* a topic. The core scores an account at its newest event time; if
a fetch brings a billing event from day 70 before the usage events of days
1-69 (a history POSTed in one request, a restart, a slow topic), those usage
events would be scored after it, as if they were late.

So the records buffered for the five topics are merged **per account** by event
time (``occurred_at``). Per account, not per partition as Kafka Streams merges:
a topic partition holds many accounts in publish order, which is not event-time
order across them (one account's history backfilled after another's), and a
per-partition merge would let one account's old events hold back, or be
overtaken by, another's. An account's next record (its earliest buffered one)
may go when every topic of its partition index that holds nothing of this
account buffered is

* **caught up** (the broker had no unfetched records of it) as observed by a
  fetch response at least ``max_idle_s`` after the record was *published*
  (Kafka Streams' ``max.task.idle.ms``, measured against the fetch rather than
  the clock): a record published together with ours on that topic (the same
  POST, the same producer batch) may be appended a little later, and a worker
  whose fetches lag (CPU-bound, or a slow broker) must not take an old "caught
  up" for a current one. This is the only latency alignment adds, and only
  for accounts missing from some topic's buffer;
* or **behind** (unfetched records, which may be this account's and older):
  then the account waits. Bounded as a safety valve by ``max_hold_s`` per
  partition index and ``max_buffered`` records, so a topic that is never
  fetched cannot stall the rest for ever; giving up is counted (``forced``).

Commits must never pass a record still held: :meth:`safe_upto` gives, per
topic-partition, the end of the processed prefix, which is all the caller may
commit; what was processed beyond it is redelivered after a crash and
deduplicated by the core.

What is left unordered is lateness at the source (a system that sends
yesterday's tickets today): the core applies such events within what its
state keeps (see ``allowed_lateness_hours``).

Pure: no Kafka, no clock (``now`` is passed in), so it is tested directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_NEVER = float("-inf")


@dataclass(slots=True)
class Buffered:
    """One fetched record waiting to be merged."""

    ts: float  #: event time (epoch seconds), -inf when unreadable (poison goes first)
    published: float  #: record timestamp (epoch seconds), -inf when unknown
    seq: int  #: fetch order, to count reorderings
    tp: Any
    record: Any
    done: bool = False


@dataclass
class AlignStats:
    """What alignment cost and did (exported as metrics by the app)."""

    waited_s: float = 0.0  #: partition-index seconds spent holding for a lagging topic
    reordered: int = 0  #: records processed after a record fetched later (moved back)
    forced: int = 0  #: holds given up after ``max_hold_s`` / ``max_buffered`` (should stay 0)


@dataclass
class EventTimeAligner:
    """Buffers fetched records and releases each account's in event-time order."""

    max_idle_s: float
    max_hold_s: float
    #: Fixed tie-break between topics for equal event times (e.g. the topic list order).
    topic_rank: Mapping[str, int]
    max_buffered: int = 200_000
    #: Per topic-partition, in fetch order (for commits and rewinds).
    queues: dict[Any, deque[Buffered]] = field(default_factory=dict)
    #: Per partition index, per account key, per topic: the account's buffered records.
    keyed: dict[int, dict[Any, dict[str, deque[Buffered]]]] = field(default_factory=dict)
    stats: AlignStats = field(default_factory=AlignStats)
    buffered: int = 0
    _held_since: dict[int, float] = field(default_factory=dict)
    _seq: int = 0

    def add(self, tp: Any, items: Iterable[tuple[Any, float, float, Any]]) -> None:
        """Buffer ``(account_key, event_time, published, record)`` of one topic-partition."""
        queue = self.queues.get(tp)
        if queue is None:
            queue = self.queues[tp] = deque()
        keys = self.keyed.setdefault(tp.partition, {})
        topic = tp.topic
        seq = self._seq
        n = 0
        for key, ts, published, record in items:
            seq += 1
            n += 1
            item = Buffered(ts, published, seq, tp, record)
            queue.append(item)
            per_topic = keys.get(key)
            if per_topic is None:
                per_topic = keys[key] = {}
            mine = per_topic.get(topic)
            if mine is None:
                mine = per_topic[topic] = deque()
            mine.append(item)
        self._seq = seq
        self.buffered += n

    def pending(self) -> bool:
        return self.buffered > 0

    def busy_indexes(self) -> set[int]:
        """Partition indexes with buffered records (their timers must not be swept yet)."""
        return {index for index, keys in self.keyed.items() if keys}

    def first_offsets(self) -> dict[Any, int]:
        """The first unprocessed buffered offset per topic-partition (where to seek back to)."""
        out = {}
        for tp, queue in self.queues.items():
            for item in queue:
                if not item.done:
                    out[tp] = item.record.offset
                    break
        return out

    def safe_upto(self, tp: Any) -> int | None:
        """Offset of the first record of ``tp`` still held, or None when none is."""
        queue = self.queues.get(tp)
        while queue and queue[0].done:
            queue.popleft()
        return queue[0].record.offset if queue else None

    def clear(self, tps: Iterable[Any] | None = None) -> None:
        """Drop buffered records (all, or those of ``tps``): they will be fetched again."""
        if tps is None:
            self.queues.clear()
            self.keyed.clear()
            self._held_since.clear()
            self.buffered = 0
            return
        for tp in tps:
            queue = self.queues.pop(tp, None)
            if not queue:
                continue
            self.buffered -= sum(1 for item in queue if not item.done)
            keys = self.keyed.get(tp.partition, {})
            for key in list(keys):
                per_topic = keys[key]
                per_topic.pop(tp.topic, None)
                if not any(per_topic.values()):
                    del keys[key]

    def select(
        self,
        groups: Mapping[int, Sequence[Any]],
        behind: Callable[[Any], bool],
        now: float,
        observed: Mapping[Any, float] | None = None,
    ) -> list[tuple[Any, Any]]:
        """Release what can be released: each account's records in event-time order.

        ``groups`` maps a partition index to its assigned topic-partitions;
        ``behind(tp)`` says whether the broker holds unfetched records of ``tp``;
        ``observed[tp]`` is when (wall clock, epoch seconds, as record timestamps
        are) a fetch response last reported on ``tp`` (missing: never; ``None``:
        always current); ``now`` is the wall clock, for the hold-back timers.
        """
        selected: list[tuple[Any, Any]] = []
        stats = self.stats
        rank = self.topic_rank
        idle = self.max_idle_s
        for index, tps in groups.items():
            keys = self.keyed.get(index)
            if not keys:
                self._held_since.pop(index, None)
                continue
            lagging = {tp.topic for tp in tps if behind(tp)}
            since = self._held_since.get(index)
            if (
                lagging
                and since is not None
                and (now - since >= self.max_hold_s or self.buffered > self.max_buffered)
            ):
                lagging = set()
                stats.forced += 1
            topics = [tp.topic for tp in tps]
            # Per topic: the newest publish time its "caught up" vouches for.
            vouch = {
                tp.topic: (float("inf") if observed is None else observed.get(tp, _NEVER)) - idle
                for tp in tps
            }
            held = False
            for key in list(keys):
                per_topic = keys[key]
                top_seq = 0
                while True:
                    head: Buffered | None = None
                    head_topic = ""
                    for topic, mine in per_topic.items():
                        if mine:
                            first = mine[0]
                            if (
                                head is None
                                or first.ts < head.ts
                                or (
                                    first.ts == head.ts
                                    and rank.get(topic, 0) < rank.get(head_topic, 0)
                                )
                            ):
                                head, head_topic = first, topic
                    if head is None:
                        del keys[key]
                        break
                    missing = [t for t in topics if not per_topic.get(t)]
                    if missing:
                        if any(t in lagging for t in missing):
                            held = True
                            break  # a lagging topic may still hold this account's earlier events
                        if head.published > min(vouch[t] for t in missing):
                            break  # a sibling on a caught-up topic may still be in flight
                    per_topic[head_topic].popleft()
                    head.done = True
                    self.buffered -= 1
                    selected.append((head.tp, head.record))
                    if head.seq < top_seq:
                        stats.reordered += 1
                    else:
                        top_seq = head.seq
            if held:
                self._held_since.setdefault(index, now)
            else:
                released = self._held_since.pop(index, None)
                if released is not None:
                    stats.waited_s += now - released
        return selected


def ackable(first: int, last: int, processed_max: int | None, held: int | None) -> int:
    """The last offset of a topic-partition that may be acked after processing ``first..last``.

    The aligner processes records beyond one it still holds (another account's), so the
    answer is the highest offset processed so far (``processed_max`` from earlier
    batches, or ``last``), cut below the first record still ``held``. Below ``first``
    the batch acks nothing new: the caller acks ``first..ackable`` when it is not empty.
    Without ``processed_max``, records processed beyond a hold would never be acked
    once the held record went through alone, and the commits would stall for good.
    """
    upto = last if processed_max is None or processed_max < last else processed_max
    if held is not None and held <= upto:
        upto = held - 1
    return upto
