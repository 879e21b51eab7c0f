"""``scorer``: the real Faust scorer (tables, changelog, health updates, alerts), shared events.

The events are pre-filled into the measurement's own event topics exactly as
ingest would publish them; the scorer engineer's ``measure_scorer_eps`` then
runs the production Faust app over them until every event is processed and
returns events/s. There is no benchmark-only code path: the function drives the
same app ``healthstream scorer`` runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from benchmarks.context import BenchContext, require
from benchmarks.kafka_tools import prefill
from healthstream.settings import Settings

NAME = "scorer"

MeasureScorer = Callable[[Settings, int], Awaitable[float]]


async def measure(ctx: BenchContext) -> dict[str, float]:
    measure_scorer_eps = cast(
        MeasureScorer,
        require("services.scorer.bench", "measure_scorer_eps", "scorer engineer, issue 5"),
    )
    settings = ctx.settings(NAME)
    await prefill(settings, ctx.events, lambda f: ctx.progress.update(0.2 * f, "pre-filling"))
    ctx.progress.update(0.2, "running the Faust scorer over the pre-filled topics")
    eps = await measure_scorer_eps(settings, len(ctx.events))
    if not eps or eps <= 0:
        raise RuntimeError(f"measure_scorer_eps returned {eps!r}")
    return {"scorer_eps": float(eps)}
