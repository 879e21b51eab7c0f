"""``baseline``: the ceiling — a bare aiokafka loop on the same broker and the same events.

It does the minimum a stateful stream processor must do per event: consume,
decode the JSON, update a per-key dict, produce one message per event, commit.
No framework, no validation, no scoring. ``scorer_ratio`` is measured against it.

The clock starts at the first record fetched (group join and topic creation
are excluded, as they are for the scorer) and stops when every event is
processed and every produced message is acknowledged.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from benchmarks.context import BenchContext
from benchmarks.kafka_tools import prefill
from healthstream.kafka import make_consumer, make_producer

NAME = "baseline"


async def run_loop(ctx: BenchContext, expected: int) -> tuple[int, float]:
    """Process ``expected`` events from the pre-filled topics; return (processed, seconds)."""
    settings = ctx.settings(NAME)
    ctx.progress.update(0.0, "pre-filling topics")
    await prefill(settings, ctx.events, lambda f: ctx.progress.update(0.3 * f, "pre-filling"))
    topics = settings.topics
    consumer = make_consumer(
        settings,
        *topics.events,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:8]}",
        max_poll_records=2_000,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    producer = make_producer(settings)
    await producer.start()
    await consumer.start()
    state: dict[bytes, dict[str, Any]] = {}
    processed = 0
    started: float | None = None
    try:
        while processed < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=2_000)
            if started is None and batches:
                started = time.perf_counter()
            pending = []
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    key = record.key or b""
                    current = state.get(key)
                    if current is None:
                        current = state[key] = {"events": 0, "last": ""}
                    current["events"] += 1
                    current["last"] = event["occurred_at"]
                    out = orjson.dumps({"account_id": event["account_id"], **current})
                    pending.append(await producer.send(topics.account_health, out, key=key))
                    processed += 1
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
                ctx.progress.update(0.3 + 0.7 * processed / expected, f"{processed:,} events")
        await producer.flush()
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await producer.stop()
    return processed, elapsed


async def measure(ctx: BenchContext) -> dict[str, float]:
    expected = len(ctx.events)
    processed, elapsed = await run_loop(ctx, expected)
    return {"baseline_eps": processed / elapsed}
