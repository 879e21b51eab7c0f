"""``healthstream trainer``: one process learns the churn model from every worker's examples.

Topology (see docs/scorer.md): each scorer worker owns a subset of accounts, so
no worker alone sees enough outcomes to learn churn. Workers publish labelled
:class:`TrainingExample` records to ``training-examples``; this single trainer
consumes all of them (consumer group ``<prefix>healthstream-trainer``), learns
with progressive validation (predict, update rolling AUC, learn), and publishes
a pickled :class:`ChurnModel` snapshot to the compacted, single-partition
``model-snapshots`` topic every N new labels or every T seconds (when there
are new labels). Every worker reads that topic from the beginning and uses the
latest snapshot.

Restart safety: on start the trainer loads the latest snapshot it published,
and it commits its consumer offsets only right after a snapshot is acknowledged
by the broker. A crash therefore resumes from exactly the examples the last
snapshot had not yet learned: no example is learned twice, none is skipped.

A plain aiokafka loop, not Faust: one consumer, one producer, no state table,
no partitioned processing -- Faust would add start-up time and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import threading
import time
from contextlib import suppress

import uvicorn
from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

from healthstream.http import probes_router
from healthstream.kafka import ConsumerLag, make_consumer, make_producer
from healthstream.logs import configure_logging
from healthstream.supervisor import Supervisor
from services.scorer.core import ChurnModel, TrainingExample, load_scorecard
from services.scorer.metrics import TrainerMetrics, export_blend
from services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

SNAPSHOT_KEY = b"churn-model"
#: The consume loop polls every 0.5 s; silent for this long, it is stuck, not waiting.
STALE_AFTER_S = 30.0


async def latest_snapshot(settings: ScorerSettings, timeout_s: float = 10.0) -> bytes | None:
    """The newest value on ``model-snapshots`` (None if the topic is empty)."""
    topic = settings.topics.model_snapshots
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic, timeout_s)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        latest: bytes | None = None
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value:
                        latest = record.value
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
        return latest
    finally:
        await consumer.stop()


async def _partitions(consumer: object, topic: str, timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic)  # type: ignore[attr-defined]
        if partitions:
            return set(partitions)
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not found")
        await consumer._client.force_metadata_update()  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)


class Trainer:
    def __init__(self, settings: ScorerSettings, *, registry: CollectorRegistry = REGISTRY) -> None:
        self.settings = settings
        self.scorecard = load_scorecard(settings.scorecard_path)
        self.metrics = TrainerMetrics(registry)
        self.model = ChurnModel(self.scorecard.model)
        self.snapshots_published = 0
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._stop = asyncio.Event()
        self._consuming = False
        self._heartbeat = 0.0
        #: Restarts the consume loop after a failure (it resumes from the last snapshot).
        self.supervisor = Supervisor(
            "trainer",
            unhealthy_after_s=settings.task_unhealthy_after_s,
            stopping=self._stop.is_set,
            registry=registry,
        )

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.settings.trainer_group_id}"

    def stop(self) -> None:
        self._stop.set()

    def alive(self, now: float | None = None) -> bool:
        """True while the consume loop runs and has polled within ``STALE_AFTER_S``."""
        now = time.monotonic() if now is None else now
        return self._consuming and now - self._heartbeat < STALE_AFTER_S

    async def serve(self) -> None:
        """Run the consume loop under supervision until :meth:`stop`."""
        await self.supervisor.run("trainer-loop", self.run)

    async def run(self) -> None:
        settings = self.settings
        previous = await latest_snapshot(settings)
        if previous is not None:
            self.model = ChurnModel.from_snapshot(previous, self.scorecard.model)
            log.info("resumed from snapshot", extra={"labels_seen": self.model.labels_seen})
        self._export()
        consumer = make_consumer(
            settings, settings.topics.training_examples, group_id=self.group_id
        )
        producer = make_producer(settings, max_request_size=16 * 1024 * 1024)
        await producer.start()
        await consumer.start()
        lag = ConsumerLag(self.metrics.lag)
        self._consuming = True
        try:
            while not self._stop.is_set():
                self._heartbeat = time.monotonic()
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self._learn(record.value)
                due = self._since_snapshot >= settings.trainer_snapshot_every or (
                    self._since_snapshot
                    and time.monotonic() - self._last_snapshot
                    >= settings.trainer_snapshot_interval_s
                )
                if due:
                    await self._publish(producer)
                    await consumer.commit()
                await lag.update(consumer)
        finally:
            self._consuming = False
            with suppress(Exception):
                if self._since_snapshot:
                    await self._publish(producer)
                    await consumer.commit()
            await consumer.stop()
            await producer.stop()

    def _learn(self, raw: bytes | None) -> None:
        try:
            example = TrainingExample.from_json_bytes(raw or b"")
            if example.label not in (0, 1):
                raise ValueError(f"label must be 0 or 1, got {example.label}")
        except (ValueError, KeyError, TypeError, AttributeError):
            self.metrics.invalid.inc()
            log.warning("undecodable training example skipped", exc_info=True)
            return
        self.model.learn_one(example.features, example.label, example.scorecard)
        self._since_snapshot += 1
        self.metrics.examples.inc()

    async def _publish(self, producer: object) -> None:
        snapshot = self.model.snapshot()
        await producer.send_and_wait(  # type: ignore[attr-defined]
            self.settings.topics.model_snapshots, snapshot, key=SNAPSHOT_KEY
        )
        self.snapshots_published += 1
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self.metrics.snapshots.inc()
        self._export()
        log.info(
            "model snapshot published",
            extra={
                "labels_seen": self.model.labels_seen,
                "rolling_auc": self.model.rolling_auc,
                "bytes": len(snapshot),
            },
        )

    def _export(self) -> None:
        auc = self.model.rolling_auc
        self.metrics.auc.set(float("nan") if auc is None else auc)
        self.metrics.labels.set(self.model.labels_seen)
        export_blend(self.metrics.blend_weight, self.metrics.blend_auc, self.model.blend_reason())


def probe_app(trainer: Trainer, registry: CollectorRegistry = REGISTRY) -> FastAPI:
    """``/healthz``, ``/readyz`` (ready only while the consume loop is alive), ``/metrics``."""

    async def readiness() -> dict[str, bool]:
        return {"consume_loop": trainer.alive()}

    app = FastAPI(title="healthstream trainer", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(
        probes_router(readiness, registry=registry, liveness=trainer.supervisor.errors)
    )
    return app


class ProbeServer:
    """The probe app on its own thread and event loop, beside the trainer's loop.

    Its own thread so a busy learning step cannot delay a probe into a false
    failure, and so uvicorn leaves the trainer's signal handlers alone.
    """

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="probes", daemon=True)

    def start(self, timeout_s: float = 10.0) -> ProbeServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the trainer's probe server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot-every", type=int, help="publish after this many new labels")
    parser.add_argument("--snapshot-interval", type=float, help="or after this many seconds")
    parser.add_argument("--port", type=int, help="port of /metrics (0 disables)")


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if getattr(args, "snapshot_every", None):
        overrides["trainer_snapshot_every"] = args.snapshot_every
    if getattr(args, "snapshot_interval", None):
        overrides["trainer_snapshot_interval_s"] = args.snapshot_interval
    if getattr(args, "port", None) is not None:
        overrides["trainer_port"] = args.port
    settings = ScorerSettings(**overrides)  # type: ignore[arg-type]
    configure_logging("trainer", settings.log_level, settings.log_json)
    trainer = Trainer(settings)
    probes = None
    if settings.trainer_port:
        probes = ProbeServer(probe_app(trainer), settings.host, settings.trainer_port).start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, trainer.stop)
        await trainer.serve()

    try:
        asyncio.run(main())
    finally:
        if probes is not None:
            probes.stop()
    return 0
