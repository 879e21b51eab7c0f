"""Recovery of the scorer's state table after a restart, through the scorer's own recovery path.

The changelog topic of the scorer's Faust table is pre-filled with the given
(account key, ``AccountState`` bytes) records, partitioned as the scorer's own
writes are (by key, like the event topics it is co-partitioned with). Then a
real scorer worker (:func:`services.scorer.app.create_scorer`, the object
``healthstream scorer`` runs) is started in-process, and we wait until it
declares itself recovered (the table's ``on_recover`` hook). Every record is
checked to be in the table afterwards, so a fast-but-incomplete recovery
cannot pass.

Two spans are reported: the worker's whole restart (start -> ready, what an
operator waits for) and the changelog replay alone (from Faust's recovery
service timestamps; the scorer's ``BatchRecovery`` writes whole fetches into
the table's store). Only the replay grows with the number of accounts; most
of the fixed part is the consumer-group join, which on the embedded broker
lasts half the session timeout.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic

from benchmarks.context import BenchContext, require
from healthstream.kafka import COMPACTED, ensure_topics, make_producer

_WINDOW = 5_000


@dataclass(frozen=True)
class RecoveryTiming:
    restart_s: float  # worker start -> ready (recovered and assigned)
    replay_s: float  # Faust's changelog replay span
    accounts: int

    @property
    def fixed_s(self) -> float:
        return max(0.0, self.restart_s - self.replay_s)


async def _fill_changelog(settings: Any, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write ``records`` to the changelog, partitioned by key as the scorer's own writes are.

    In producer batches, as the scorer writes them. No workaround for the
    embedded broker's (tansu 0.6) ListOffsets answer (the last batch's base
    offset + 1 instead of the high-water mark) any more: the scorer's recovery
    reads to the high-water mark its fetches report
    (``services/scorer/recovery.py``), and :func:`time_recovery` checks that
    every account came back, so a recovery that stopped early fails here.
    """
    spec = NewTopic(
        name=topic,
        num_partitions=settings.partitions,
        replication_factor=settings.replication_factor,
        topic_configs=dict(COMPACTED),
    )
    await ensure_topics(settings)
    await ensure_topics(settings, [spec])
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        pending: list[Any] = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= _WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def time_recovery(ctx: BenchContext, records: list[tuple[bytes, bytes]]) -> RecoveryTiming:
    """Pre-fill the changelog with ``records``, start a scorer, time its recovery."""
    create_scorer: Any = require("services.scorer.app", "create_scorer", "scorer engineer, issue 5")
    scorer_settings_cls: Any = require(
        "services.scorer.settings", "ScorerSettings", "scorer engineer, issue 5"
    )
    table_name: str = require("services.scorer.app", "TABLE_NAME", "scorer engineer")  # type: ignore[assignment]
    from prometheus_client import CollectorRegistry

    base = ctx.settings("memory")
    settings = scorer_settings_cls(
        **{
            name: getattr(base, name)
            for name in ("kafka_bootstrap_servers", "kafka_enable_idempotence", "topic_prefix")
        },
        partitions=base.partitions,
        log_level="WARNING",
        scorer_web_enabled=False,
        scorer_data_dir=Path(tempfile.mkdtemp(prefix="healthstream-bench-scorer-")),
        scorer_session_timeout_s=10.0,
    )
    app_id = f"{settings.topic_prefix}{settings.scorer_app_id}"
    changelog = f"{app_id}-{table_name}-changelog"
    ctx.progress.update(0.5, f"writing {len(records):,} states to the changelog")
    await _fill_changelog(settings, changelog, records)
    ctx.progress.update(0.6, "restarting a scorer worker on that changelog")
    scorer = create_scorer(settings, registry=CollectorRegistry())
    started = time.perf_counter()
    await scorer.app.start()
    try:
        deadline = started + (45.0 if ctx.config.quick else 300.0)
        while not scorer.ready:
            if time.perf_counter() > deadline:
                raise RuntimeError("the scorer did not finish recovery in time")
            if scorer.app.crash_reason is not None:
                raise RuntimeError(f"the scorer crashed: {scorer.app.crash_reason!r}")
            await asyncio.sleep(0.01)
        restart_s = time.perf_counter() - started
        recovery = scorer.app.tables.recovery
        replay_s = float(recovery._recovery_ended_at - recovery._recovery_started_at)
        recovered = scorer.table.data.data
        missing = [key for key, _ in records if key not in recovered]
        if missing:
            raise RuntimeError(
                f"recovery incomplete: {len(missing):,} of {len(records):,} accounts missing"
            )
    finally:
        await scorer.app.stop()
    return RecoveryTiming(restart_s=restart_s, replay_s=replay_s, accounts=len(records))


async def measure_recovery(ctx: BenchContext, records: list[tuple[bytes, bytes]]) -> float:
    """Seconds to recover ``target_accounts`` accounts' state (extrapolated if fewer were used)."""
    timing = await time_recovery(ctx, records)
    target = ctx.config.target_accounts
    ctx.note(
        "memory",
        f"restart of a scorer worker with {timing.accounts:,} accounts: {timing.restart_s:.2f} s "
        f"to ready, of which Faust's changelog replay {timing.replay_s:.2f} s",
    )
    if timing.accounts == target:
        return timing.restart_s
    scaled = timing.fixed_s + timing.replay_s * target / timing.accounts
    ctx.note(
        "memory",
        f"recovery_s EXTRAPOLATED to {target:,} accounts: fixed {timing.fixed_s:.2f} s + "
        f"replay scaled linearly {timing.replay_s:.2f} s x {target / timing.accounts:.0f}",
    )
    return scaled
