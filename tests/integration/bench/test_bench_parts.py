"""The benchmark's own instruments: they decide what a run reports, so they are tested too.

Fast (seconds): the e2e stage breakdown, the load-stretched time limits, the
metrics parser, and the committed-offset reader the e2e wait relies on, the
last against the real embedded broker.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from aiokafka import TopicPartition

from benchmarks.context import MAX_STRETCH, stretch_for_load
from benchmarks.e2e import metric_sum
from benchmarks.e2e_stages import summarise, wall
from benchmarks.group_progress import GroupProgress, describe
from healthstream.kafka import make_consumer, make_producer
from healthstream.settings import Settings


def test_time_limits_stretch_with_load_only_between_one_and_the_cap() -> None:
    assert stretch_for_load(0.3, 2) == 1.0
    assert stretch_for_load(2.0, 2) == 1.0
    assert stretch_for_load(3.0, 2) == 1.5
    assert stretch_for_load(50.0, 2) == MAX_STRETCH
    assert stretch_for_load(5.0, 0) == 1.0


@dataclass
class _Stamps:
    posted_wall: float | None = None
    acked_wall: float | None = None
    produced_wall: float | None = None
    in_kafka_wall: float | None = None
    stored_wall: float | None = None
    seen_wall: float | None = None


def test_stage_breakdown_reports_each_stage_and_skips_missing_stamps() -> None:
    probes = [
        _Stamps(100.0, 100.010, 100.510, 100.520, 100.600, 100.700),
        _Stamps(200.0, 200.030, 200.830, 200.840, 201.000, 201.100),
        _Stamps(300.0, 300.020, None, None, None, None),  # alert never produced
    ]
    text = summarise(probes)
    assert "ingest (POST -> 202): p50 20, p95 29, max 30 ms (n=3)" in text
    assert "scorer (202 -> alert produced): p50 650, p95 785, max 800 ms (n=2)" in text
    assert "alerts consumer (readable -> stored): p50 120, p95 156, max 160 ms (n=2)" in text
    assert "alerts commit + stream (stored -> seen): p50 100, p95 100, max 100 ms (n=2)" in text


def test_wall_reads_the_alerts_api_timestamps() -> None:
    assert wall("1970-01-01T00:00:10.250000Z") == 10.25
    assert wall("1970-01-01T01:00:00+01:00") == 0.0
    assert wall(None) is None
    assert wall("yesterday") is None


def test_metric_sum_adds_every_labelled_sample_of_one_metric_only() -> None:
    text = "\n".join(
        [
            "# TYPE healthstream_alerts_received_total counter",
            'healthstream_alerts_received_total{reason="payment_failed"} 3.0',
            'healthstream_alerts_received_total{reason="score_drop"} 4.0',
            "healthstream_alerts_received_totalx 100.0",
            'healthstream_alerts_received_created{reason="score_drop"} 1.7e9',
        ]
    )
    assert metric_sum(text, "healthstream_alerts_received_total") == 7.0
    assert math.isclose(metric_sum(text, "healthstream_alerts_stored_total"), 0.0)


async def test_group_progress_sees_what_a_consumer_group_committed(
    kafka_settings: Settings,
) -> None:
    topic = kafka_settings.topics.risk_alerts
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for index in range(5):
            await producer.send_and_wait(topic, b"{}", partition=index % 2)
    finally:
        await producer.stop()
    group = f"bench-progress-{uuid.uuid4().hex[:6]}"
    consumer = make_consumer(kafka_settings, topic, group_id=group)
    await consumer.start()
    try:
        got = 0
        while got < 5:
            batches = await consumer.getmany(timeout_ms=1_000)
            got += sum(len(records) for records in batches.values())
        await consumer.commit({TopicPartition(topic, 0): 2})  # part of partition 0 only
    finally:
        await consumer.stop()
    progress = GroupProgress(kafka_settings, [topic])
    await progress.start()
    try:
        snapshot = await progress.snapshot()
    finally:
        await progress.stop()
    assert snapshot[group] == {topic: 2}
    text = describe(snapshot, kafka_settings.topic_prefix)
    assert f"group {group} committed risk-alerts 2/" in text
