"""``replay`` against the real embedded broker: every event lands on its type's topic, keyed
by account, in file order per account."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from healthstream.kafka import make_consumer
from healthstream.settings import Settings
from simulator import generate
from simulator.ndjson import iter_lines, write_events
from simulator.replay import ReplayError, replay


async def _consume_all(settings: Settings, expected: int) -> list[tuple[str, bytes, bytes]]:
    consumer = make_consumer(settings, *settings.topics.events, group_id=None)
    await consumer.start()
    got: list[tuple[str, bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                got.extend((r.topic, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def test_replay_routes_by_type_and_keys_by_account(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "events.ndjson"
    events = list(itertools.islice(generate(12, 60, 4), 4000))
    write_events(events, path)
    stats = await replay(kafka_settings, iter_lines(path), max_in_flight=8)
    assert stats.published == len(events) and stats.invalid == 0

    got = await _consume_all(kafka_settings, len(events))
    assert len(got) == len(events)
    topics = kafka_settings.topics
    per_account: dict[str, list[str]] = defaultdict(list)
    for topic, key, value in got:
        event = orjson.loads(value)
        assert topic == topics.for_type(event["type"])
        assert key == event["account_id"].encode()
        per_account[event["account_id"] + topic].append(event["event_id"])
    # Order is kept per account and topic (one partition per key).
    for account_topic, ids in per_account.items():
        expected = [
            e["event_id"]
            for e in events
            if e["account_id"] + topics.for_type(e["type"]) == account_topic
        ]
        assert ids == expected
    assert {t for t, _, _ in got} >= {topics.usage, topics.ticket, topics.billing, topics.account}


async def test_replay_rejects_a_bad_line_with_its_number(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "bad.ndjson"
    good = {
        "event_id": "e1",
        "account_id": "a1",
        "type": "usage",
        "name": "login",
        "occurred_at": "2024-01-01T00:00:00Z",
    }
    path.write_bytes(orjson.dumps(good) + b"\n" + orjson.dumps({**good, "type": "nope"}) + b"\n")
    with pytest.raises(ReplayError, match="line 2: field type"):
        await replay(kafka_settings, iter_lines(path))
    stats = await replay(kafka_settings, iter_lines(path), skip_invalid=True)
    assert (stats.published, stats.invalid) == (1, 1)


async def test_replay_paced_by_rate(kafka_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "paced.ndjson"
    write_events(itertools.islice(generate(3, 5, 1), 30), path)
    stats = await replay(kafka_settings, iter_lines(path), rate=200.0)
    assert stats.published == 30
    got = await _consume_all(kafka_settings, 30)
    assert len(got) == 30
