"""Broker outages, backpressure and the dead-letter queue, against real brokers.

These tests start their own embedded broker (not the session one) because they
stop it. tansu keeps everything in memory, so a broker restarted on the same
port comes back empty: what was acknowledged before the stop is checked on the
first broker before stopping it, what was acknowledged after the restart on the
second one. Together that is every 202'd event, each exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from healthstream.broker import EmbeddedBroker
from healthstream.deadletter import read_headers
from healthstream.kafka import ensure_topics
from healthstream.settings import Settings
from tests.integration.ingest.live import (
    INGEST_KEY,
    LiveServer,
    event,
    ingest_settings,
    read_topic,
)

HEADERS = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker().start()
    try:
        yield broker
    finally:
        broker.stop()


def broker_settings(broker: EmbeddedBroker) -> Settings:
    return Settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_enable_idempotence=False,
        topic_prefix=f"r{uuid.uuid4().hex[:8]}-",
        partitions=2,
        _env_file=None,
    )


async def post(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/events", content=orjson.dumps(batch), headers=HEADERS)


async def test_broker_stopped_mid_test_503_then_recovery_exactly_once(
    own_broker: EmbeddedBroker,
) -> None:
    settings = broker_settings(own_broker)
    await ensure_topics(settings)
    server = LiveServer(
        ingest_settings(settings, publish_timeout_seconds=2.0, broker_probe_interval_seconds=0.5)
    ).start()
    accepted_before: list[str] = []
    accepted_after: list[str] = []
    replacement: EmbeddedBroker | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            before = [event(i) for i in range(20)]
            r = await post(client, before)
            assert r.status_code == 202 and r.json()["accepted"] == 20
            accepted_before = [e["event_id"] for e in before]
            on_first = await read_topic(settings, settings.topics.usage, expected=20)
            assert sorted(orjson.loads(x.value)["event_id"] for x in on_first) == sorted(
                accepted_before
            )

            own_broker.stop()
            during = [event(100 + i) for i in range(10)]
            r = await post(client, during)
            assert r.status_code == 503
            assert r.json()["error"] == "broker_unavailable"
            assert int(r.headers["Retry-After"]) >= 1
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"] == {"broker": False}
            r = await post(client, during)  # still down: refused fast, still 503
            assert r.status_code == 503

            replacement = EmbeddedBroker(port=own_broker.port).start()
            await ensure_topics(settings)
            # The client's retry loop: honour Retry-After (shortened here) until accepted.
            deadline = time.monotonic() + 60
            while True:
                r = await post(client, during)
                if r.status_code == 202:
                    break
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "ingest did not recover"
                await asyncio.sleep(0.5)
            accepted_after += [e["event_id"] for e in during][: r.json()["accepted"]]
            assert r.json()["accepted"] + r.json()["duplicates"] == 10
            after = [event(200 + i) for i in range(15)]
            r = await post(client, after)
            assert r.status_code == 202 and r.json()["accepted"] == 15
            accepted_after += [e["event_id"] for e in after]
            assert (await client.get("/readyz")).status_code == 200

        on_second = await read_topic(settings, settings.topics.usage, expected=25)
        ids = [orjson.loads(x.value)["event_id"] for x in on_second]
        assert len(ids) == len(set(ids)), "an event was published twice"
        assert set(ids) == {e["event_id"] for e in during} | set(accepted_after)
        assert len(ids) == 25
    finally:
        server.stop()
        if replacement is not None:
            replacement.stop()


async def test_full_producer_buffer_answers_503_backpressure(own_broker: EmbeddedBroker) -> None:
    """With the broker gone, one batch holds the in-flight budget; the next is refused at once."""
    settings = broker_settings(own_broker)
    await ensure_topics(settings)
    server = LiveServer(
        ingest_settings(settings, max_in_flight_events=10, publish_timeout_seconds=3.0)
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert (await post(client, [event(0)])).status_code == 202
            own_broker.stop()
            holding = asyncio.create_task(post(client, [event(i) for i in range(1, 9)]))
            publisher = server.app.state.publisher
            for _ in range(200):
                if publisher.in_flight:
                    break
                await asyncio.sleep(0.01)
            assert publisher.in_flight == 8
            refused = await post(client, [event(i) for i in range(10, 14)])
            assert refused.status_code == 503
            assert refused.json()["error"] == "backpressure"
            assert refused.headers["Retry-After"]
            held = await holding
            assert held.status_code == 503 and held.json()["error"] == "broker_unavailable"
            metrics = (await client.get("/metrics")).text
            assert 'healthstream_ingest_events_rejected_total{reason="too_many_in_flight"} 4.0' in (
                metrics
            )
    finally:
        server.stop()


async def test_unpublishable_event_goes_to_dlq_with_reason(kafka_settings: Settings) -> None:
    server = LiveServer(ingest_settings(kafka_settings, max_message_bytes=4096)).start()
    try:
        big = event(0, properties={"notes": "x" * 8000})
        small = event(1)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            r = await post(client, [big, small])
        assert r.status_code == 202
        assert r.json() == {"accepted": 1, "duplicates": 0, "dead_lettered": 1, "ignored": 0}
        topics = kafka_settings.topics
        [dead] = await read_topic(kafka_settings, topics.dlq(topics.usage), expected=1)
        why = read_headers(dead.headers)
        assert dead.key == big["account_id"].encode()
        assert dead.value.startswith(b'{"event_id":"' + big["event_id"].encode() + b'"')
        assert why["error"].startswith("MessageSizeTooLargeError: ")
        assert "max_message_bytes" in why["error"]
        assert (why["source_topic"], why["error_stage"]) == (topics.usage, "publish")
        assert int(why["original_size"]) > 8000 > len(dead.value)
        [published] = await read_topic(kafka_settings, topics.usage, expected=1)
        assert orjson.loads(published.value)["event_id"] == small["event_id"]
    finally:
        server.stop()
