"""BatchProcessor on its own (no broker): coalesced state writes, partitions, DLQ, dedupe.

The processor is the part of the worker that knows nothing about Faust, so its
bookkeeping can be checked exactly here; the worker tests cover it with Faust.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

import orjson
from prometheus_client import CollectorRegistry

from healthstream.settings import Topics
from services.scorer.core import AccountState, ScoringEngine, load_scorecard
from services.scorer.dlq import read_headers
from services.scorer.metrics import ScorerMetrics
from services.scorer.processor import BatchProcessor, OutRecord
from tests.integration.scorer.histories import Script

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
