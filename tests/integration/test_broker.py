"""The embedded broker and the topic admin, against a real Kafka-protocol broker."""

from aiokafka.admin import AIOKafkaAdminClient

from healthstream.broker import EmbeddedBroker
from healthstream.kafka import broker_reachable, ensure_topics, make_consumer, make_producer
from healthstream.settings import Settings


async def test_topics_created_idempotently_and_usable(kafka_settings: Settings) -> None:
    assert await ensure_topics(kafka_settings) == []  # second call creates nothing
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(kafka_settings.topics.all) <= names
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(kafka_settings.topics.usage, b"{}", key=b"acct")
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_settings, kafka_settings.topics.usage, group_id=None)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
    records = [r for rs in batch.values() for r in rs]
    assert [(r.key, r.value) for r in records] == [(b"acct", b"{}")]


async def test_reachability_reflects_broker_state() -> None:
    broker = EmbeddedBroker().start()
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, _env_file=None)
    assert await broker_reachable(settings)
    broker.stop()
    assert not broker.running
    assert not await broker_reachable(settings, timeout=1.0)
