"""BatchProcessor on its own (no broker): coalesced state writes, partitions, DLQ, dedupe.

The processor is the part of the worker that knows nothing about Faust, so its
bookkeeping can be checked exactly here; the worker tests cover it with Faust.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import NamedTuple

import orjson
from prometheus_client import CollectorRegistry

from healthstream.deadletter import read_headers
from healthstream.settings import Topics
from services.scorer.core import AccountState, ScoringEngine, load_scorecard
from services.scorer.metrics import ScorerMetrics
from services.scorer.processor import BatchProcessor, OutRecord
from tests.integration.scorer.histories import T0, Script

CHANGELOG = "app-account-state-changelog"


class TP(NamedTuple):
    topic: str
    partition: int


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


def make() -> tuple[BatchProcessor, dict[bytes, bytes], list[OutRecord]]:
    published: list[OutRecord] = []

    async def publish(records: list[OutRecord]) -> None:
        published.extend(records)

    store: dict[bytes, bytes] = {}
    processor = BatchProcessor(
        ScoringEngine(load_scorecard(None)),
        Topics("p-"),
        store,
        CHANGELOG,
        publish,
        ScorerMetrics(CollectorRegistry()),
        clock=lambda: 1.8e9,
    )
    return processor, store, published


def records(events: list[dict], partition: int) -> list[tuple[TP, Rec]]:
    out = []
    for offset, event in enumerate(events):
        topic = f"p-{event['type']}-events"
        out.append(
            (
                TP(topic, partition),
                Rec(topic, partition, offset, event["account_id"].encode(), orjson.dumps(event)),
            )
        )
    return out


async def test_one_state_write_per_account_per_batch_on_the_source_partition() -> None:
    processor, store, published = make()
    a, b = Script("a"), Script("b")
    events = [a.event(d / 10, "usage", "login", user_id="u") for d in range(20)]
    events += [b.event(d / 10, "usage", "login", user_id="u") for d in range(5)]
    assert await processor.process(records(events, partition=1)) == 25
    writes = [r for r in published if r[0] == CHANGELOG]
    assert Counter(r[2] for r in writes) == {b"a": 1, b"b": 1}
    assert {r[1] for r in published} == {1}  # every output on the events' partition
    assert AccountState.from_bytes(store[b"a"]).events == 20
    assert store[b"a"] == processor.cache[b"a"].to_bytes()  # cache == store after a batch
    assert processor.index.queues[1] and processor.watermarks[1] > 0


async def test_redelivered_batch_changes_nothing_and_publishes_nothing() -> None:
    processor, store, published = make()
    events = [Script("a").event(d, "usage", "login", user_id="u") for d in range(10)]
    await processor.process(records(events, partition=0))
    before, n = dict(store), len(published)
    await processor.process(records(events, partition=0))
    assert store == before
    assert published[n:] == []


async def test_poison_records_are_dead_lettered_with_original_bytes() -> None:
    processor, _, published = make()
    bad = [
        (TP("p-usage-events", 0), Rec("p-usage-events", 0, 7, b"k", b"{not json")),
        (TP("p-usage-events", 0), Rec("p-usage-events", 0, 8, b"k", b'{"event_id": "x"}')),
    ]
    await processor.process(bad)
    dlq = [r for r in published if r[0] == "p-usage-events.dlq"]
    assert [r[3] for r in dlq] == [b"{not json", b'{"event_id": "x"}']
    stages = [read_headers(r[4])["error_stage"] for r in dlq]
    assert stages == ["decode", "schema"]
    assert read_headers(dlq[1][4])["source_offset"] == "8"


def stamped(events: list[dict], partition: int, published_ms: int) -> list[tuple[TP, Rec]]:
    """Records as the broker returns them: with the producer's timestamp."""
    return [(tp, rec._replace(timestamp=published_ms)) for tp, rec in records(events, partition)]


def _alerts(published: list[OutRecord]) -> list[bytes]:
    return [r[3] for r in published if r[0] == "p-risk-alerts"]


async def test_one_future_dated_event_changes_no_other_account() -> None:
    """An event dated a year ahead of its publish time is dead-lettered: it cannot move
    the partition clock, so the sweep ticks nobody (on its partition) into the future."""
    fleet = [Script(f"acct-{i}") for i in range(24)]
    events = [s.event(day, "usage", "login", user_id="u") for day in range(30) for s in fleet]
    publish_ms = int((T0 + timedelta(days=31)).timestamp() * 1000)
    rogue = Script("rogue").event(30 + 365, "usage", "login", user_id="u")
    runs = []
    for extra in ([], [rogue]):
        processor, store, published = make()
        processor.monotonic = lambda: 1e9  # every account long quiet
        await processor.process(stamped(events + extra, 0, publish_ms))
        await processor.sweep(10_000)
        runs.append((processor, store, published))
    (clean, clean_store, clean_out), (dirty, dirty_store, dirty_out) = runs
    assert dirty.watermarks == clean.watermarks
    assert {k: v for k, v in dirty_store.items()} == clean_store
    assert _alerts(dirty_out) == _alerts(clean_out)
    dlq = [r for r in dirty_out if r[0] == "p-usage-events.dlq"]
    assert len(dlq) == 1 and read_headers(dlq[0][4])["error_stage"] == "future"
    assert read_headers(dlq[0][4])["error_field"] == "occurred_at"


async def test_events_older_than_the_state_keeps_are_dead_lettered_and_counted() -> None:
    processor, store, published = make()
    s = Script("a")
    await processor.process(records([s.event(100, "usage", "login", user_id="u")], 0))
    old = [s.event(100 - 57, "usage", "login", user_id="u"), s.event(100 - 30, "usage", "login")]
    await processor.process(records(old, 0))
    dlq = [r for r in published if r[0] == "p-usage-events.dlq"]
    assert [orjson.loads(r[3])["event_id"] for r in dlq] == [old[0]["event_id"]]
    assert read_headers(dlq[0][4])["error_stage"] == "late"
    assert "1344 h" in read_headers(dlq[0][4])["error"]
    assert AccountState.from_bytes(store[b"a"]).events == 2  # the 30-day-old one applied
    late = processor.metrics.late._value.get()  # type: ignore[attr-defined]
    assert late == 1


async def test_sweep_skips_busy_partitions_and_accounts_still_receiving_events() -> None:
    processor, store, _ = make()
    clock = [1000.0]
    processor.monotonic = lambda: clock[0]
    quiet, other = Script("quiet"), Script("other")
    await processor.process(records([quiet.event(0, "usage", "login", user_id="u")], 0))
    await processor.process(records([other.event(40, "usage", "login", user_id="u")], 0))
    before = store[b"quiet"]
    assert await processor.sweep(100, quiet_s=10) == 0  # both touched just now
    clock[0] += 11
    assert await processor.sweep(100, busy={0}, quiet_s=10) == 0  # partition 0 is merging
    assert store[b"quiet"] == before
    assert await processor.sweep(100, quiet_s=10) == 2
    assert store[b"quiet"] != before  # ticked to the partition clock: 40 days on
