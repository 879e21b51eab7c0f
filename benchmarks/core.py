"""``core``: the pure scoring core in-process, no broker: the upper bound of any scorer worker.

Runs the scorer-core engineer's ``measure_core_eps`` over the shared events'
encoded bytes twice: all in (fast parse + apply, which is what ``core_eps``
reports, because the scorer must parse too) and apply only (parse done
beforehand), so a reader can see how the budget splits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from benchmarks.context import BenchContext, require

NAME = "core"

MeasureCore = Callable[..., float]


async def measure(ctx: BenchContext) -> dict[str, float]:
    measure_core_eps = cast(
        MeasureCore,
        require("services.scorer.core.bench", "measure_core_eps", "scorer-core engineer, issue 5"),
    )
    events: Sequence[bytes] = ctx.events.encoded
    ctx.progress.update(0.1, f"parse + apply, {len(events):,} events")
    all_in = float(measure_core_eps(events, include_parse=True))
    ctx.progress.update(0.55, "apply only (pre-parsed)")
    apply_only = float(measure_core_eps(events, include_parse=False))
    if all_in <= 0 or apply_only <= 0:
        raise RuntimeError(f"measure_core_eps returned {all_in!r} / {apply_only!r}")
    ctx.note(NAME, f"core_eps is parse + apply; apply only (events pre-parsed): {apply_only:,.0f}")
    return {"core_eps": all_in, "core_apply_only_eps": apply_only}
