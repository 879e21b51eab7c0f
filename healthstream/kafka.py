"""Kafka client factories and idempotent topic administration.

Everything here speaks plain Kafka protocol and works the same against the
embedded broker and a production cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import tenacity
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
)
from prometheus_client import Gauge

from healthstream import retry
from healthstream.settings import Settings

log = logging.getLogger(__name__)

#: Topic-level configs by role. Data topics keep a week for replays; compacted
#: topics keep the latest value per key forever (health per account, model snapshot).
COMPACTED = {"cleanup.policy": "compact"}
RETAINED = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


IDEMPOTENCE_SETTING = "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE"


class KafkaConfigurationError(RuntimeError):
    """The configuration cannot work with this cluster: retrying will not help.

    Deliberately not a :class:`KafkaError`, which callers treat as transient
    (broker down, leader moving) and retry or answer 503 for, for ever.
    """


class IdempotenceUnsupported(KafkaConfigurationError):
    """The broker refused ``InitProducerId``: it cannot do idempotent producers."""


class DurableProducer(AIOKafkaProducer):
    """``AIOKafkaProducer`` whose start fails loudly when idempotence cannot work.

    With ``enable_idempotence`` the producer asks the broker for a producer id
    before anything else. A broker without it (the embedded tansu) answers with
    an error that aiokafka reports as a bare ``UnknownError`` from a background
    task; the service then looks alive and publishes nothing. Here that first
    failure becomes one error that says which setting to change.
    """

    def __init__(self, *, bootstrap_servers: Any, **options: Any) -> None:
        super().__init__(bootstrap_servers=bootstrap_servers, **options)
        self._servers = bootstrap_servers

    async def start(self) -> None:
        try:
            await super().start()
        except KafkaConnectionError:
            raise  # the broker is down or unreachable: transient, callers retry
        except KafkaError as exc:
            txn = self._txn_manager
            if txn is None or txn.has_pid():
                raise
            message = (
                f"the Kafka broker at {self._servers} cannot do idempotent producers "
                f"(InitProducerId failed: {type(exc).__name__}). Set {IDEMPOTENCE_SETTING}=false "
                "for a broker without them (the embedded broker of `healthstream broker`), "
                "or allow IdempotentWrite on the cluster"
            )
            log.error(message, extra={"setting": IDEMPOTENCE_SETTING})
            raise IdempotenceUnsupported(message) from exc


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """Durable producer: acks from all replicas, idempotent, so retries never duplicate.

    ``start()`` raises :class:`IdempotenceUnsupported` (naming
    ``HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE``) when the broker cannot do it.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }
    options.update(overrides)
    return DurableProducer(**options)


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """Consumer with manual commits: callers commit only after their side effects are durable."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


class ConsumerLag:
    """Export an aiokafka consumer's lag per assigned topic-partition to a labelled gauge.

    Why here: every plain-aiokafka consumer (alerts, trainer) needs the same
    numbers SREs alert on, and the same care: lag is the high watermark minus
    the consumer's position (both known locally, no broker round trip), and a
    partition revoked by a rebalance is removed from the gauge, so summing over
    pods never counts a partition twice. The gauge needs labels
    ``topic`` and ``partition``; partitions are bounded by the topic layout.
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.exported: set[TopicPartition] = set()

    async def update(self, consumer: AIOKafkaConsumer) -> None:
        try:
            assigned = set(consumer.assignment())
        except IllegalStateError:
            assigned = set()
        for tp in self.exported - assigned:
            self.gauge.remove(tp.topic, str(tp.partition))
        self.exported &= assigned
        for tp in assigned:
            try:
                highwater = consumer.highwater(tp)
                # Known only after a fetch answered, so the position is valid too.
                position = await consumer.position(tp) if highwater is not None else None
            except (IllegalStateError, AssertionError):
                continue  # revoked meanwhile: the next update removes it
            if highwater is None or position is None:
                continue
            self.gauge.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
            self.exported.add(tp)


def topic_specs(settings: Settings) -> list[NewTopic]:
    topics = settings.topics
    specs = []
    for name in topics.all:
        config = COMPACTED if name in topics.compacted else RETAINED
        partitions = 1 if name == topics.model_snapshots else settings.partitions
        specs.append(
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=settings.replication_factor,
                topic_configs=dict(config),
            )
        )
    return specs


async def ensure_topics(
    settings: Settings, specs: Iterable[NewTopic] | None = None, timeout: float = 30.0
) -> list[str]:
    """Create missing topics; existing ones are left untouched. Returns the names created.

    A broker still starting is retried (the project's backoff) for ``timeout`` seconds.
    """
    wanted = list(specs if specs is not None else topic_specs(settings))
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception_type(KafkaError),
        stop=tenacity.stop_after_delay(timeout),
        wait=retry.wait(cap=2.0),
        before_sleep=lambda rs: log.warning(
            "topic admin failed, retrying",
            extra={"error": str(rs.outcome.exception() if rs.outcome else "")},
        ),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await _create_missing(settings, wanted)
    raise AssertionError("unreachable: tenacity either returns or raises")


async def _create_missing(settings: Settings, wanted: list[NewTopic]) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-admin",
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [spec for spec in wanted if spec.name not in existing]
        created = []
        for spec in missing:
            try:
                await admin.create_topics([spec])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()


async def broker_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    """Readiness probe: can we fetch cluster metadata right now?"""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id}-probe",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            log.debug("admin close failed", exc_info=True)
