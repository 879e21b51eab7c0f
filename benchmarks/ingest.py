"""``ingest``: batched HTTP ingest to broker-acknowledged events/s, with a concurrent load client.

A real ``healthstream ingest`` process (uvicorn) listens on a free port and
publishes to this measurement's topics; the ingest engineer's load client
(``services.ingest.bench.measure_ingest_eps``) posts the shared events in
batches over several connections and counts only events the server answered
202 for, i.e. events the broker acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from benchmarks.context import BenchContext, require
from benchmarks.services import INGEST_KEY, running_services
from healthstream.kafka import ensure_topics

NAME = "ingest"
CONCURRENCY = 4
WARMUP_EVENTS = 1_000

MeasureIngest = Callable[[str, str, Sequence[dict[str, Any]], int], Awaitable[float]]


async def measure(ctx: BenchContext) -> dict[str, float]:
    measure_ingest_eps = cast(
        MeasureIngest,
        require("services.ingest.bench", "measure_ingest_eps", "ingest engineer, issue 4"),
    )
    settings = ctx.settings(NAME)
    await ensure_topics(settings)
    ctx.progress.update(0.05, "starting healthstream ingest")
    async with running_services(ctx, settings, ("ingest",), 60 * ctx.stretch) as stack:
        # Warm up connections, the producer and the server's code paths with copies
        # of a few events under other ids (so the measured ones are not duplicates).
        ctx.progress.update(0.15, "warming up")
        warmup = [
            {**event, "event_id": f"{event['event_id']}~warmup"}
            for event in ctx.events.events[:WARMUP_EVENTS]
        ]
        await measure_ingest_eps(stack.url("ingest"), INGEST_KEY, warmup, CONCURRENCY)
        ctx.progress.update(0.2, f"posting {len(ctx.events):,} events, {CONCURRENCY} connections")
        eps = await measure_ingest_eps(
            stack.url("ingest"), INGEST_KEY, ctx.events.events, CONCURRENCY
        )
    if not eps or eps <= 0:
        raise RuntimeError(f"measure_ingest_eps returned {eps!r}")
    return {"ingest_eps": float(eps)}
