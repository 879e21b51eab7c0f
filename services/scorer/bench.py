"""Throughput of the real scorer worker, for ``healthstream bench`` (issue 9).

No benchmark-only code path: this starts the same :class:`Scorer` that
``healthstream scorer`` runs (Faust app, batching consumer, table, changelog,
outputs), in-process, over topics the caller pre-filled, and waits until every
record has been processed and the producer has flushed its outputs.

The clock starts when the first batch starts (worker start-up and the group
join, ~10-20 s with Faust, are excluded, as they are for the baseline) and
stops after the last batch's outputs are acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from healthstream.settings import Settings
from services.scorer.settings import ScorerSettings

_SHARED = ("kafka_bootstrap_servers", "kafka_enable_idempotence", "topic_prefix", "partitions")


def scorer_settings_from(settings: Settings, **overrides: object) -> ScorerSettings:
    values: dict[str, object] = {name: getattr(settings, name) for name in _SHARED}
    if isinstance(settings, ScorerSettings):
        values = settings.model_dump()
    values.update(
        {
            "log_level": "WARNING",
            "scorer_web_enabled": False,
            "scorer_data_dir": Path(tempfile.mkdtemp(prefix="healthstream-scorer-bench-")),
            "scorer_session_timeout_s": 10.0,
            "scorer_heartbeat_interval_s": 1.0,
        }
    )
    values.update(overrides)
    return ScorerSettings(**values)  # type: ignore[arg-type]


async def measure_scorer_eps(
    settings: Settings, n_events: int, *, timeout_s: float = 600.0, **overrides: object
) -> float:
    """Run a scorer worker over ``n_events`` pre-filled events; return events/s."""
    from services.scorer.app import Scorer

    scorer = Scorer(scorer_settings_from(settings, **overrides), registry=CollectorRegistry())
    deadline = time.monotonic() + timeout_s
    await scorer.app.start()
    try:
        while True:
            processor = scorer.processor
            if processor is not None and processor.records_seen >= n_events:
                break
            if scorer.app.crash_reason is not None:
                raise RuntimeError(f"scorer crashed: {scorer.app.crash_reason!r}")
            if time.monotonic() > deadline:
                seen = processor.records_seen if processor else 0
                raise TimeoutError(f"scorer processed {seen} of {n_events} records in time")
            await asyncio.sleep(0.005)
        await scorer.app.producer.flush()
        done = time.monotonic()
        assert processor is not None and processor.first_batch_at is not None
        elapsed = max(done - processor.first_batch_at, 1e-9)
        return processor.records_seen / elapsed
    finally:
        await scorer.app.stop()
