"""Kafka helpers the measurements share: create a measurement's topics and pre-fill them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from benchmarks.events import EventSet
from healthstream.kafka import ensure_topics, make_producer
from healthstream.settings import Settings

#: Sends in flight before the pre-fill waits for acknowledgements.
_WINDOW = 5_000


async def prefill(
    settings: Settings,
    events: EventSet,
    on_progress: Callable[[float], None] | None = None,
) -> int:
    """Create the topics and publish every event to the topic of its type, keyed by account.

    This is what ingest does in production, so the scorer and the baseline read
    exactly the layout they would see live. Returns the number of events published.
    """
    await ensure_topics(settings)
    topics = settings.topics
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        pending: list[asyncio.Future[object]] = []
        total = len(events)
        for index, (event, payload) in enumerate(zip(events.events, events.encoded, strict=True)):
            topic = topics.for_type(event["type"])
            pending.append(await producer.send(topic, payload, key=event["account_id"].encode()))
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
                if on_progress is not None:
                    on_progress((index + 1) / total)
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)
