"""Read a bounded slice of history straight from the event topics, for a backtest.

Why no consumer group: a group consumer joins the group (a rebalance of the live
scorers if it were theirs) and commits offsets. This reader *assigns* every partition
of the five event topics itself (``group_id=None``, no commits), so the live consumer
groups never see it.

Bounds:

- start: ``offsets_for_times(from - lateness)`` per partition. Kafka's index is by
  *record* timestamp, which is the publish time (``healthstream replay`` and ingest
  leave it to the producer's clock) and never earlier than the event it carries, so
  no event that occurred at or after ``from`` is skipped; records in the margin are
  filtered by ``occurred_at``.
- end: what was published before reading started. A partition is done at its first
  record published later (so a live topic never keeps the reader going) or when the
  reader has caught up with every partition (a fetch that returns nothing within
  ``poll_ms``). Why not the log end offsets: the embedded broker reports them per
  record batch, not per record, so they would cut a partition short. The end is not
  sought by time either: a backfill published today can carry last year's events, so
  records are filtered by ``occurred_at`` instead.

Records are written per partition in offset order, then concatenated in topic and
partition order and sorted by event time (stable), so the replayed order, ties
included, is the same on every run. Data topics keep a week by default (see
``healthstream.kafka.RETAINED``): for a longer backtest raise ``retention.ms`` or
replay an NDJSON archive instead.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from evaluation.sorting import sort_events
from services.scorer.core.events import parse_timestamp


@dataclass
class TopicSlice:
    """What was read: counts per topic, and records outside the time bounds."""

    records: int = 0
    written: int = 0
    before_start: int = 0
    after_end: int = 0
    unreadable: int = 0  # not JSON or without a valid occurred_at (the DLQ's business)
    by_topic: dict[str, int] = field(default_factory=dict)
    partitions: int = 0


def _event_time(value: bytes) -> float | None:
    try:
        return parse_timestamp(orjson.loads(value)["occurred_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


async def read_topics(
    bootstrap_servers: str,
    topics: list[str],
    target: Path,
    *,
    start: float | None = None,
    end: float | None = None,
    margin_seconds: float = 0.0,
    client_id: str = "healthstream-backtest",
    poll_ms: int = 500,
) -> TopicSlice:
    """Write the events of ``topics`` with ``start <= occurred_at <= end`` to ``target``
    (NDJSON sorted by event time) and return what was read."""
    stats = TopicSlice()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    with tempfile.TemporaryDirectory(prefix="healthstream-topics-") as tmp:
        directory = Path(tmp)
        try:
            available = await consumer.topics()
            missing = [t for t in topics if t not in available]
            if missing:
                raise ValueError(f"topic(s) not found on the broker: {', '.join(missing)}")
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            stats.partitions = len(partitions)
            consumer.assign(partitions)
            started_ms = int(time.time() * 1000)
            begins = await consumer.beginning_offsets(partitions)
            firsts: dict[TopicPartition, int | None] = dict(begins)
            if start is not None:
                stamp = max(0, int((start - margin_seconds) * 1000))
                found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
                for tp in partitions:
                    hit = found.get(tp)  # None: nothing was published since then
                    firsts[tp] = None if hit is None else max(begins[tp], hit.offset)
            files = {tp: directory / f"{i:05d}.ndjson" for i, tp in enumerate(partitions)}
            handles = {tp: open(files[tp], "wb") for tp in partitions}  # noqa: SIM115
            try:
                pending = set()
                for tp in partitions:
                    first = firsts[tp]
                    if first is not None:
                        consumer.seek(tp, first)
                        pending.add(tp)
                consumer.pause(*(set(partitions) - pending))
                while pending:
                    batches = await consumer.getmany(*pending, timeout_ms=poll_ms)
                    if not any(batches.values()):
                        break  # caught up everywhere
                    for tp, records in batches.items():
                        out = handles[tp]
                        for record in records:
                            if record.timestamp >= started_ms:
                                pending.discard(tp)  # published after the read began
                                consumer.pause(tp)
                                break
                            stats.records += 1
                            _keep(record.value, out, stats, tp.topic, start, end)
            finally:
                for handle in handles.values():
                    handle.close()
        finally:
            await consumer.stop()
        merged = directory / "merged.ndjson"
        with open(merged, "wb") as out:
            for tp in partitions:
                with open(files[tp], "rb") as part:
                    shutil.copyfileobj(part, out)
        sort_events(merged, target)
    return stats


def _keep(
    value: bytes | None,
    out: IO[bytes],
    stats: TopicSlice,
    topic: str,
    start: float | None,
    end: float | None,
) -> None:
    if not value:
        stats.unreadable += 1
        return
    ts = _event_time(value)
    if ts is None:
        stats.unreadable += 1
        return
    if start is not None and ts < start:
        stats.before_start += 1
        return
    if end is not None and ts > end:
        stats.after_end += 1
        return
    line = value.strip()
    if b"\n" in line:  # pretty-printed JSON from some producer: one line per event
        line = orjson.dumps(orjson.loads(line))
    out.write(line + b"\n")
    stats.written += 1
    stats.by_topic[topic] = stats.by_topic.get(topic, 0) + 1
