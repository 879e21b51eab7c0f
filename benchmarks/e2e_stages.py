"""Where an e2e probe's latency goes: a stamp per stage, and a summary per stage.

The e2e figure alone (POST -> alert on the stream) says *that* the pipeline is
slow, not *where*. Each probe therefore also records, on the wall clock shared
by all processes of this machine:

* ``acked``: ingest answered 202, i.e. the broker acknowledged the events;
* ``produced``: the alert record's CreateTime, set by the scorer's producer
  when the scorer handed it the alert (scorer fetch + process + batching);
* ``in Kafka``: when :func:`follow_alerts`, a reader of ``risk-alerts`` of
  our own (no consumer group, so it takes nothing from the alerts service),
  could fetch the alert (the producer's linger and the broker);
* ``stored``: the stored alert's ``created_at`` (the alerts consumer reading
  the record and inserting it);
* ``seen``: the alert arrived on ``GET /v1/stream`` (commit + broadcast).

The reader costs a few records per second of CPU; it reads only the alerts
topic, never the event or health topics.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from healthstream.kafka import make_consumer
from healthstream.settings import Settings

FETCH_WAIT_MS = 20

STAGES: tuple[tuple[str, str, str], ...] = (
    ("ingest (POST -> 202)", "posted_wall", "acked_wall"),
    ("scorer (202 -> alert produced)", "acked_wall", "produced_wall"),
    ("producer + broker (produced -> readable)", "produced_wall", "in_kafka_wall"),
    ("alerts consumer (readable -> stored)", "in_kafka_wall", "stored_wall"),
    ("alerts commit + stream (stored -> seen)", "stored_wall", "seen_wall"),
)


class Stamped(Protocol):
    account_id: str
    produced_wall: float | None
    in_kafka_wall: float | None


def wall(text: object) -> float | None:
    """RFC 3339 text (as the alerts API writes it) to seconds since the epoch, else None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


async def follow_alerts(
    settings: Settings, probes: Mapping[str, Stamped], ready: asyncio.Event
) -> None:
    """Stamp when each probe's alert became readable on ``risk-alerts``, and its CreateTime."""
    import time

    # A short fetch wait: the embedded broker (tansu) answers a fetch only when its
    # max wait expires, even if records arrived meanwhile (aiokafka's default 500 ms
    # gave a median 136 ms delivery delay in a probe; 20 ms gave 7 ms), and the
    # stamp must say when the alert became readable, not when we happened to look.
    consumer = make_consumer(
        settings, settings.topics.risk_alerts, group_id=None, fetch_max_wait_ms=FETCH_WAIT_MS
    )
    await consumer.start()
    try:
        ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=1_000)
            fetched = time.time()
            for records in batches.values():
                for record in records:
                    probe = probes.get((record.key or b"").decode(errors="replace"))
                    if probe is None or probe.in_kafka_wall is not None:
                        continue
                    probe.in_kafka_wall = fetched
                    if record.timestamp is not None and record.timestamp > 0:
                        probe.produced_wall = record.timestamp / 1000.0
    finally:
        await consumer.stop()


def _quantile(ordered: list[float], q: float) -> float:
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(probes: Iterable[Any]) -> str:
    """One line per stage: p50 / p95 / max in ms over the probes that have both stamps."""
    probes = list(probes)
    parts = []
    for label, start, end in STAGES:
        spans = sorted(
            (getattr(p, end) - getattr(p, start)) * 1000.0
            for p in probes
            if getattr(p, start) is not None and getattr(p, end) is not None
        )
        if not spans:
            parts.append(f"{label}: no data")
            continue
        parts.append(
            f"{label}: p50 {_quantile(spans, 0.5):,.0f}, p95 {_quantile(spans, 0.95):,.0f}, "
            f"max {spans[-1]:,.0f} ms (n={len(spans)})"
        )
    return "where the latency goes (wall clock, per stage): " + "; ".join(parts)


class LoopLag:
    """How late this process's event loop runs timers: the benchmark's own share of latency.

    The load client, the stream listener and the alerts reader share one event
    loop; if it is late (CPU starved), the stamps taken in it are late too, and
    that delay belongs to the benchmark, not to the services measured.
    """

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.lags_ms: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.period_s
            await asyncio.sleep(self.period_s)
            self.lags_ms.append(max(0.0, (loop.time() - expected) * 1000.0))

    def describe(self) -> str:
        if not self.lags_ms:
            return "the benchmark's event loop lag was not sampled"
        ordered = sorted(self.lags_ms)
        return (
            f"benchmark event loop timers late by p50 {_quantile(ordered, 0.5):,.1f}, "
            f"p99 {_quantile(ordered, 0.99):,.1f}, max {ordered[-1]:,.1f} ms "
            "(client-side delay included in the latencies above)"
        )
