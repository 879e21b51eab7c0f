"""Run real scorer workers (``healthstream scorer``) as child processes for tests.

A child process, not in-process: the restart test must SIGKILL the worker,
and Faust wants to own its event loop. Timeouts are lowered so a killed member
leaves the group within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
from aiokafka import TopicPartition

from healthstream.broker import free_port
from healthstream.kafka import make_consumer, make_producer
from healthstream.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def worker_env(settings: Settings, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "HEALTHSTREAM_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "HEALTHSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "HEALTHSTREAM_PARTITIONS": str(settings.partitions),
        "HEALTHSTREAM_SCORER_PORT": str(port),
        "HEALTHSTREAM_SCORER_DATA_DIR": str(data_dir),
        "HEALTHSTREAM_SCORER_SESSION_TIMEOUT_S": "6",
        "HEALTHSTREAM_SCORER_HEARTBEAT_INTERVAL_S": "1",
        "HEALTHSTREAM_SCORER_COMMIT_INTERVAL_S": "0.5",
        "HEALTHSTREAM_SCORER_SWEEP_INTERVAL_S": "0.5",
        "HEALTHSTREAM_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Worker:
    """One ``healthstream scorer`` child process."""

    def __init__(
        self, settings: Settings, data_dir: Path, log_path: Path, module: str = "", **extra: str
    ) -> None:
        self.port = free_port()
        self.env = worker_env(settings, self.port, data_dir, **extra)
        self.log_path = log_path
        self.module = module
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        argv = (
            [sys.executable, "-m", self.module]
            if self.module
            else [sys.executable, "-m", "healthstream.cli", "scorer"]
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(self.url + "/readyz", timeout=2)
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise TimeoutError(f"worker not ready: {self.log_path.read_text()[-3000:]}")

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            response = await client.get(self.url + "/metrics", timeout=5)
            response.raise_for_status()
            return response.text

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@contextlib.contextmanager
def running_worker(
    settings: Settings, tmp: Path, name: str = "worker", **extra: str
) -> Iterator[Worker]:
    worker = Worker(settings, tmp / "data", tmp / f"{name}.log", **extra).start()
    try:
        yield worker
    finally:
        worker.stop()


def metric_value(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of ``name`` (optionally with a label substring)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            metric = head.split("{")[0]
            if metric == name and labels in head:
                total += float(value)
    return total


async def publish(
    settings: Settings, events: Iterable[bytes | dict], topic_of=None, flush_every: int = 0
) -> int:
    """Publish events (JSON dicts or raw bytes) to their type's topic, keyed by account.

    ``flush_every``: wait for the broker's acks after every N events, as a client
    POSTing batches to ingest does (each request is acknowledged before the next),
    rather than queueing everything at once.
    """
    import orjson

    producer = make_producer(settings)
    await producer.start()
    n = 0
    try:
        for event in events:
            if isinstance(event, dict):
                value = orjson.dumps(event)
                topic = settings.topics.for_type(event["type"])
                key = str(event["account_id"]).encode()
            else:
                value, topic, key = event, topic_of or settings.topics.usage, b"poison"
            await producer.send(topic, value, key=key)
            n += 1
            if flush_every and n % flush_every == 0:
                await producer.flush()
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def read_all(settings: Settings, topic: str, timeout: float = 3.0) -> list:
    """Every record currently on ``topic`` (all partitions), in partition order.

    Reads until each partition's position reaches the high-water mark the
    fetch responses report, not the ListOffsets answer: the embedded broker
    (tansu 0.6) answers ListOffsets(latest) with the last batch's base
    offset + 1, and stopping there would drop the rest of that batch.
    """
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = await _partitions(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                records.extend(tp_records)
            if await _caught_up(consumer, tps) or time.monotonic() > deadline:
                break
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer, topics: Iterable[str]) -> list[TopicPartition]:
    tps = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps += [TopicPartition(topic, p) for p in sorted(partitions)]
    return tps


async def _caught_up(consumer, tps: Iterable[TopicPartition]) -> bool:
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def end_offsets(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """High-water marks of ``topics`` as fetch responses report them (see :func:`read_all`).

    Seeks just before the ListOffsets answer and fetches once per partition:
    the fetch response carries the true high-water mark on tansu as on Kafka.
    """
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        listed = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(0, listed[tp] - 1))
        deadline = time.monotonic() + 30
        while any(consumer.highwater(tp) is None for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError("no fetch response carried a high-water mark")
            await consumer.getmany(timeout_ms=200)
        return {tp: int(consumer.highwater(tp)) for tp in tps}
    finally:
        await consumer.stop()


async def committed_offsets(
    settings: Settings, group_id: str, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Offsets committed by ``group_id`` (OffsetFetch, without joining the group)."""
    consumer = make_consumer(settings, group_id=group_id)
    await consumer.start()
    try:
        result = {}
        for tp in tps:
            offset = await consumer.committed(tp)
            if offset is not None:
                result[tp] = offset
        return result
    finally:
        await consumer.stop()


def scorer_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}healthstream-scorer"


async def wait_consumed(settings: Settings, timeout: float = 120.0) -> None:
    """Until the scorer group has committed every event topic to its end offset.

    Offsets are committed only after the outputs of those records were
    flushed, so afterwards every output of everything published is readable.
    """
    ends = {tp: end for tp, end in (await end_offsets(settings, settings.topics.events)).items()}

    last: dict[TopicPartition, int] = {}

    async def done() -> bool:
        last.clear()
        last.update(await committed_offsets(settings, scorer_group(settings), ends))
        return all(end == 0 or last.get(tp, -1) >= end for tp, end in ends.items())

    try:
        await wait_until(done, timeout, what="scorer to commit every event")
    except TimeoutError as exc:
        behind = {f"{tp.topic}[{tp.partition}]": (last.get(tp), end) for tp, end in ends.items()}
        raise TimeoutError(f"committed vs end offsets: {behind}") from exc


def last_by_key(records: list) -> dict[bytes, bytes]:
    latest: dict[bytes, bytes] = {}
    for record in records:
        latest[record.key] = record.value
    return latest
