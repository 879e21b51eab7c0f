"""Consumer lag per topic-partition, as the alerts service and the trainer export it.

Real embedded broker, real aiokafka consumer: the gauge must say how many
records each assigned partition still holds, and forget partitions the
consumer no longer owns (or summing over pods would count them twice).
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from healthstream.kafka import ConsumerLag, make_consumer, make_producer
from healthstream.settings import Settings


def _lag(registry: CollectorRegistry, topic: str) -> dict[str, float]:
    return {
        sample.labels["partition"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.labels.get("topic") == topic
    }


async def test_lag_counts_unread_records_per_partition_and_forgets_revoked_ones(
    kafka_settings: Settings,
) -> None:
    topic = kafka_settings.topics.usage
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, b"x", key=b"k", partition=0)
            if i < 4:
                await producer.send_and_wait(topic, b"y", key=b"k", partition=1)
    finally:
        await producer.stop()

    registry = CollectorRegistry()
    gauge = Gauge("test_consumer_lag_messages", "lag", ["topic", "partition"], registry=registry)
    lag = ConsumerLag(gauge)
    consumer = make_consumer(kafka_settings, topic, group_id=f"{topic}-lag", max_poll_records=3)
    await consumer.start()
    try:
        read = 0
        async with asyncio.timeout(30):
            while read < 3:
                batch = await consumer.getmany(timeout_ms=500, max_records=3)
                read += sum(len(records) for records in batch.values())
        await lag.update(consumer)
        lags = _lag(registry, topic)
        # 14 records, 3 read: whatever split the fetcher chose, 11 remain.
        assert sum(lags.values()) == 11, lags
        assert set(lags) <= {"0", "1"} and lags

        async with asyncio.timeout(30):
            while sum(_lag(registry, topic).values()) > 0:
                await consumer.getmany(timeout_ms=500)
                await lag.update(consumer)
        assert _lag(registry, topic) == {"0": 0.0, "1": 0.0}

        consumer.unsubscribe()
        await lag.update(consumer)
        assert _lag(registry, topic) == {}
    finally:
        await consumer.stop()
