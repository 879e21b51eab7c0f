"""How far each consumer group has committed on some topics: progress a service's metrics miss.

The e2e measurement waits for late alerts only while the pipeline moves. The
services' metrics show the scorer's progress and the alerts *received*, but an
alerts consumer busy with thousands of health updates receives no alert for a
while although it works hard; judged by metrics alone it looks stalled and the
benchmark gave up on alerts that were still coming. Committed offsets show
every consumer's progress on every topic, whatever the service's internals
(one consumer or several, any group names), straight from the broker.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from healthstream.settings import Settings


class GroupProgress:
    """Committed offsets of every consumer group on ``topics``, and the topics' end offsets."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        self._admin: AIOKafkaAdminClient | None = None
        self._readers: dict[str, AIOKafkaConsumer] = {}

    def _consumer(self, group: str | None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
        )

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await self._admin.start()
        self._readers[""] = self._consumer(None)
        await self._readers[""].start()

    async def stop(self) -> None:
        for reader in self._readers.values():
            with contextlib.suppress(Exception):
                await reader.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()

    async def snapshot(self) -> dict[str, dict[str, int]]:
        """``{"end": {topic: records}, group: {topic: committed}}`` for groups that committed."""
        assert self._admin is not None
        ends: dict[Any, int] = await self._readers[""].end_offsets(self.partitions)
        result: dict[str, dict[str, int]] = {"end": _per_topic(ends)}
        for group, _protocol in await self._admin.list_consumer_groups():
            reader = self._readers.get(group)
            if reader is None:
                reader = self._readers[group] = self._consumer(group)
                await reader.start()
            committed = {tp: (await reader.committed(tp)) or 0 for tp in self.partitions}
            per_topic = _per_topic(committed)
            if any(per_topic.values()):
                result[group] = per_topic
        return result


def _per_topic(offsets: dict[Any, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for tp, offset in offsets.items():
        totals[tp.topic] = totals.get(tp.topic, 0) + offset
    return totals


def describe(snapshot: dict[str, dict[str, int]], prefix: str) -> str:
    """``group: topic committed/end, ...`` with the measurement's topic prefix stripped."""
    ends = snapshot.get("end", {})
    groups = []
    for group, per_topic in snapshot.items():
        if group == "end":
            continue
        parts = [
            f"{topic.removeprefix(prefix)} {done:,}/{ends.get(topic, 0):,}"
            for topic, done in per_topic.items()
            if done
        ]
        groups.append(f"group {group} committed " + ", ".join(parts))
    # (tansu reports a partition's end as the last batch's base offset + 1, so a
    # committed figure can exceed the "end" one by up to a batch on the embedded broker.)
    return "; ".join(groups) if groups else "no consumer group has committed yet"
