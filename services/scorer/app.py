"""The streaming scorer: a Faust application around the pure scoring core.

Faust provides what is hard to get right by hand: consumer-group membership,
partition assignment with the state table co-partitioned with the event
topics, the changelog-backed table and its recovery after a restart or a
rebalance, offset commits, graceful shutdown, and a web server.

The per-event work is not done in a Faust agent: an agent's stream costs
~100-200 us per event in Faust's own machinery (see ``docs/scorer.md``).
Instead :class:`~services.scorer.consumer.BatchingConsumer` hands each fetch
to :class:`~services.scorer.processor.BatchProcessor`, which writes the table's
store and its changelog directly, once per touched account per batch.

Layout of the state: Faust table ``account-state`` (bytes key = account id,
bytes value = ``AccountState.to_bytes()``), changelog topic
``<app id>-account-state-changelog`` with the same partition count as the
event topics, so account X's state lives in the partition its events arrive on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from healthstream.kafka import make_consumer
from healthstream.supervisor import Supervisor
from services.scorer.consumer import BatchingConsumer, BatchingTransport
from services.scorer.core import ChurnModel, Scorecard, ScoringEngine, load_scorecard
from services.scorer.metrics import ScorerMetrics, export_blend
from services.scorer.processor import BatchProcessor, OutRecord
from services.scorer.recovery import ScorerTableManager
from services.scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

TABLE_NAME = "account-state"


class ScorerApp(faust.App):
    """faust.App whose consumer batches the event topics (see consumer.py).

    Tables named in :attr:`batch_restore_tables` are recovered a fetch at a
    time (see recovery.py); pass ``TableManager=ScorerTableManager``.
    """

    batch_restore_tables: frozenset[str] = frozenset()
    #: Topics whose records the consumer hands over a fetch at a time (set
    #: before start: see ``BatchingConsumer.batch_topics``).
    batch_topics: frozenset[str] = frozenset()
    #: Fetch wait of the worker consumer in ms (None: Faust's 1,500 ms).
    fetch_max_wait_ms: int | None = None
    #: Event-time alignment of the event topics (see alignment.py).
    max_task_idle_ms: float = 100.0
    max_hold_s: float = 30.0

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)


def faust_broker_url(bootstrap_servers: str) -> list[str]:
    return [
        f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()
    ]


class Scorer:
    """Builds and wires one scorer worker: app, table, processor, timers, model loader."""

    def __init__(
        self,
        settings: ScorerSettings,
        *,
        scorecard: Scorecard | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self.settings = settings
        self.scorecard = scorecard or load_scorecard(settings.scorecard_path)
        self.engine = ScoringEngine(self.scorecard)
        self.metrics = ScorerMetrics(registry)
        self.registry = registry
        self.app_id = f"{settings.topic_prefix}{settings.scorer_app_id}"
        self.ready = False
        self._last_sweep = time.monotonic()
        self._align_seen: tuple[float, int, int] = (0.0, 0, 0)
        self._send_failed: BaseException | None = None
        #: Delivery futures of the last publish (awaited before the next one).
        self._in_flight: list[asyncio.Future[Any]] = []
        self._crash_task: asyncio.Future[Any] | None = None
        self._explicit: dict[str, bool] = {}
        #: Partitions whose lag this worker exports (removed when a rebalance takes them).
        self._lag_exported: set[TP] = set()
        self._band_count_task: asyncio.Future[None] | None = None
        self.app = self._build_app()
        #: Runs the model-snapshot loader; /healthz asks it (Faust supervises the rest).
        self.supervisor = Supervisor(
            "scorer",
            unhealthy_after_s=settings.task_unhealthy_after_s,
            stopping=lambda: bool(self.app.should_stop),
            registry=registry,
        )
        self.table = self.app.Table(
            TABLE_NAME,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            default=None,
            help="AccountState bytes per account (changelog-backed).",
        )
        # Raw bytes in a memory store: recovery may write fetched records as is.
        self.app.batch_restore_tables = frozenset({TABLE_NAME})
        self.app.batch_topics = frozenset(settings.topics.events)
        self.app.fetch_max_wait_ms = settings.scorer_fetch_max_wait_ms
        self.app.max_task_idle_ms = settings.scorer_max_task_idle_ms
        self.app.max_hold_s = settings.scorer_max_hold_s
        self.event_topic = self.app.topic(
            *settings.topics.events, key_serializer="raw", value_serializer="raw", acks=True
        )
        # Register for subscription without an agent: the batching consumer
        # intercepts these topics before Faust's conductor would decode them.
        self.app.topics.add(self.event_topic)
        self.processor: BatchProcessor | None = None
        self._wire()

    # ------------------------------------------------------------------ build
    def _build_app(self) -> ScorerApp:
        s = self.settings
        s.scorer_data_dir.mkdir(parents=True, exist_ok=True)
        return ScorerApp(
            self.app_id,
            broker=faust_broker_url(s.kafka_bootstrap_servers),
            store="memory://",
            # Everything this app reads or writes is bytes we encode ourselves
            # (orjson / AccountState.to_bytes): no Faust codec on any path.
            key_serializer="raw",
            value_serializer="raw",
            autodiscover=False,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            datadir=str(s.scorer_data_dir / self.app_id),
            web_enabled=s.scorer_web_enabled,
            web_port=s.scorer_port,
            web_bind=s.host,
            web_host=s.host,
            broker_session_timeout=s.scorer_session_timeout_s,
            broker_heartbeat_interval=s.scorer_heartbeat_interval_s,
            broker_commit_interval=s.scorer_commit_interval_s,
            broker_max_poll_records=s.scorer_batch_max,
            consumer_max_fetch_size=s.scorer_max_fetch_bytes,
            consumer_auto_offset_reset="earliest",
            producer_linger=s.scorer_producer_linger_s,
            producer_max_batch_size=256 * 1024,
            producer_acks=-1,
            table_standby_replicas=0,
            stream_wait_empty=True,
            TableManager=ScorerTableManager,
        )

    def _wire(self) -> None:
        app = self.app

        @app.task
        async def _setup() -> None:
            consumer = app.consumer
            if not isinstance(consumer, BatchingConsumer):  # pragma: no cover - wiring bug
                raise RuntimeError("scorer app must use the batching consumer")
            store = cast(Any, self.table.data)  # faust's memory Store: .data is the dict
            self.processor = BatchProcessor(
                self.engine,
                self.settings.topics,
                store.data,
                cast(Any, self.table).changelog_topic_name,
                self._publish,
                self.metrics,
                cache_accounts=self.settings.scorer_cache_accounts,
                max_future_skew_s=self.settings.scorer_max_future_skew_s,
            )
            self.processor.key_partitions = store._key_partition
            consumer.batch_handler = self._handle_batch
            consumer.after_fetch = self._after_fetch
            # Faust's worker leaves the root logger at DEBUG: every disabled
            # debug call then still formats. Raise it (measured +10-15%).
            logging.getLogger().setLevel(self.settings.log_level.upper())
            for name in ("faust", "mode", "aiokafka"):
                logging.getLogger(name).setLevel(logging.WARNING)

        @app.task
        async def _load_models() -> None:
            await self.supervisor.run("model-snapshots", self._follow_model_snapshots)

        @self.table.on_recover
        async def _recovered() -> None:
            if self.processor is not None:
                self.processor.cache.clear()  # the store was (re)loaded from the changelog
            self._rebuild_index()
            log.info(
                "table recovered",
                extra={"accounts": len(cast(Any, self.table.data).data)},
            )
            self.ready = True

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(
                generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        @app.page("/healthz")
        async def healthz(web: Any, request: Any) -> Any:
            failing = self.supervisor.errors()
            if failing:
                return web.json({"status": "failing", "tasks": failing}, status=503)
            return web.json({"status": "ok"})

        @app.page("/readyz")
        async def readyz(web: Any, request: Any) -> Any:
            checks = {
                "recovered": self.ready,
                "assigned": bool(app.consumer.assignment()) if self.ready else False,
                "producer": self._send_failed is None,
            }
            ok = all(checks.values())
            return web.json(
                {"status": "ready" if ok else "not ready", "checks": checks},
                status=200 if ok else 503,
            )

    # ------------------------------------------------------------------ hot path
    async def _publish(self, records: list[OutRecord]) -> None:
        """Enqueue a processing batch's records as one producer batch per topic-partition.

        aiokafka's ``send`` costs ~15-40 us per record (future, partitioner,
        accumulator lookup; Faust's wrapper adds a signal). ``create_batch`` +
        ``send_batch`` costs that once per partition per processing batch. The
        producer is Faust's own, so Faust's commit still flushes it first.

        **One produce request per processing batch.** The outputs (health,
        alerts, examples) and the state writes (changelog) of a batch must
        become durable together: if the alerts are durable and the state is
        not, a restart re-processes the events and re-emits the alerts (same
        ids, but duplicates). So every batch is built first and then handed
        to the accumulator without yielding to the event loop, after the
        previous publish was acknowledged (``add_batch`` would otherwise wait
        for a partition's previous batch and let the sender go in between), and
        with ``linger`` 0 (else the sender may drain the first batches before
        the last ones' linger expires). The sender then drains them all into
        one request per broker; a request that was not sent in full before a
        SIGKILL is discarded by the broker as a whole. On a multi-broker
        cluster the partitions of one batch can have different leaders, and
        the outputs stay at-least-once with stable ids (see docs/scorer.md).
        """
        producer = cast(
            Any, self.app.producer
        )._ensure_producer()  # the aiokafka producer Faust runs
        if self._in_flight:
            await asyncio.wait(self._in_flight)
            self._in_flight = []
        groups: dict[tuple[str, int], list[OutRecord]] = {}
        for record in records:
            groups.setdefault((record[0], record[1]), []).append(record)
        built: list[tuple[str, int, Any]] = []
        by_key: list[OutRecord] = []
        for (topic, partition), items in groups.items():
            if not await self._partitioned_like_events(topic):
                by_key.extend(items)
                continue
            batch = producer.create_batch()
            for _, _, key, value, headers in items:
                if batch.append(key=key, value=value, timestamp=None, headers=headers or []):
                    continue
                built.append((topic, partition, batch))
                batch = producer.create_batch()
                if (
                    batch.append(key=key, value=value, timestamp=None, headers=headers or [])
                    is None
                ):
                    raise ValueError(
                        f"record of {len(value)} bytes exceeds the producer batch size"
                    )
            built.append((topic, partition, batch))
        on_delivered = self._on_delivered
        in_flight = self._in_flight
        for topic, partition, batch in built:  # no await in here may suspend (see above)
            fut = await producer.send_batch(batch, topic, partition=partition)
            fut.add_done_callback(on_delivered)
            in_flight.append(fut)
        for topic, _, key, value, headers in by_key:
            fut = await producer.send(topic, value, key=key, headers=headers)
            fut.add_done_callback(on_delivered)

    async def _partitioned_like_events(self, topic: str) -> bool:
        """Explicit partitions are only right where the partition count matches."""
        known = self._explicit.get(topic)
        if known is None:
            producer = cast(Any, self.app.producer)._ensure_producer()
            partitions = await producer.partitions_for(topic)
            known = self._explicit[topic] = len(partitions) == self.settings.partitions
            if not known:
                log.warning(
                    "output topic partition count differs from the event topics; "
                    "partitioning by key per record (slower)",
                    extra={"topic": topic, "partitions": len(partitions)},
                )
        return known

    def _on_delivered(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None and self._send_failed is None:
            # Outputs are the product: never commit past a lost one. Crash the
            # worker; on restart the uncommitted records are processed again.
            self._send_failed = exc
            log.error("producer delivery failed; stopping the worker", exc_info=exc)
            self._crash_task = asyncio.ensure_future(self.app.crash(exc))

    async def _handle_batch(self, batch: Sequence[tuple[TP, Any]]) -> None:
        assert self.processor is not None
        if self._send_failed is not None:
            raise RuntimeError("producer delivery failed") from self._send_failed
        await self.processor.process(batch)
        consumer = self.app.consumer
        lag = self.metrics.lag
        last: dict[TP, int] = {tp: record.offset for tp, record in batch}
        for tp, offset in last.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))
                self._lag_exported.add(tp)

    async def _after_fetch(self) -> None:
        consumer = cast(BatchingConsumer, self.app.consumer)
        self._export_alignment(consumer)
        interval = self.settings.scorer_sweep_interval_s
        if interval <= 0 or self.processor is None:
            return
        now = time.monotonic()
        if now - self._last_sweep < interval:
            return
        self._last_sweep = now
        await self.processor.sweep(
            self.settings.scorer_sweep_max_accounts,
            busy=consumer.busy_partitions(),
            quiet_s=self.settings.scorer_sweep_quiet_s,
        )

    def _export_alignment(self, consumer: BatchingConsumer) -> None:
        stats = consumer.aligner.stats
        m = self.metrics
        m.align_wait.inc(max(0.0, stats.waited_s - self._align_seen[0]))
        m.align_reordered.inc(max(0, stats.reordered - self._align_seen[1]))
        m.align_forced.inc(max(0, stats.forced - self._align_seen[2]))
        self._align_seen = (stats.waited_s, stats.reordered, stats.forced)

    def _rebuild_index(self) -> None:
        """After recovery: index the accounts of the partitions we now own."""
        if self.processor is None:
            return
        owned = {tp.partition for tp in self.app.consumer.assignment()}
        index = self.processor.index
        index.drop_partitions(set(index.queues) - owned)
        owned_keys = []
        for key, partition in cast(Any, self.table.data)._key_partition.items():
            if partition in owned:
                index.add(key, partition)
                owned_keys.append(key)
        for partition in list(self.processor.watermarks):
            if partition not in owned:
                del self.processor.watermarks[partition]
        self._forget_revoked_metrics(owned)
        # Kept referenced: the event loop holds tasks only weakly.
        self._band_count_task = asyncio.ensure_future(
            self.processor.count_recovered_bands(owned_keys)
        )

    def _forget_revoked_metrics(self, owned: set[int]) -> None:
        """A partition another worker now owns leaves this worker's lag and band gauges.

        Why: the portfolio view sums over workers; a revoked partition left
        here would be counted twice (with a stale value) after every rebalance.
        """
        assert self.processor is not None
        self.processor.forget_unowned(owned)
        assigned = set(self.app.consumer.assignment())
        for tp in self._lag_exported - assigned:
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(tp.topic, str(tp.partition))
        self._lag_exported &= assigned

    # ------------------------------------------------------------------ model
    async def _follow_model_snapshots(self) -> None:
        """Load every snapshot on ``model-snapshots`` from the beginning, use the latest.

        A plain consumer without a group: every worker must see every snapshot
        (a consumer group would split them), and the topic is compacted, so
        reading from the beginning yields the latest model quickly. A failure
        (broker away) raises: the supervisor restarts it after a backoff.
        """
        topic = self.settings.topics.model_snapshots
        consumer = make_consumer(self.settings, group_id=None)
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(topic) or {0}
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not self.app.should_stop:
                batch = await consumer.getmany(timeout_ms=1000)
                latest = None
                for records in batch.values():
                    if records:
                        latest = records[-1]
                if latest is not None and latest.value:
                    self._use_model(latest.value)
        finally:
            await consumer.stop()

    def _use_model(self, snapshot: bytes) -> None:
        try:
            model = ChurnModel.from_snapshot(snapshot, self.scorecard.model)
        except Exception:
            log.exception("undecodable model snapshot ignored")
            return
        self.engine.model = model
        self.metrics.model_snapshots.inc()
        auc = model.rolling_auc
        self.metrics.model_auc.set(float("nan") if auc is None else auc)
        self.metrics.model_labels.set(model.labels_seen)
        export_blend(self.metrics.blend_weight, self.metrics.blend_auc, model.blend_reason())
        log.info(
            "model snapshot loaded",
            extra={"model_version": model.version, "labels_seen": model.labels_seen},
        )


def create_scorer(settings: ScorerSettings | None = None, **kwargs: Any) -> Scorer:
    return Scorer(settings or ScorerSettings(), **kwargs)
