"""``memory``: bytes of scorer state per account, and the time to recover it after a restart.

State size depends on history, not on the number of events in this run, so the
states are built the way the scorer builds them (the pure core applying every
event) from a longer simulated history: ``SAMPLE_DAYS`` days for a sample of
accounts (longer than the 56-day usage ring, so rings are full).
``bytes_per_account`` is the mean of ``AccountState.to_bytes()`` over that
sample, which is exactly what the scorer's table and changelog store per key.

For recovery the sample's states are re-keyed to ``memory_accounts`` distinct
accounts (100,000 in a full run) and written to the scorer's table changelog;
then the real scorer is started and the time until its table holds every
account is measured (see :mod:`benchmarks.recovery`). In quick mode fewer
accounts are used and the time is extrapolated linearly to 100,000, and the
result says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from itertools import cycle, islice
from typing import Any

from benchmarks.context import BenchContext, require

NAME = "memory"
SAMPLE_DAYS = 75


def build_states(
    accounts: int, days: int, seed: int, on_progress: Callable[[float], None]
) -> list[Any]:
    """Run the simulator's history for ``accounts`` accounts through the core; final states."""
    from benchmarks.events import generator

    core: Any = require("services.scorer.core", "ScoringEngine", "scorer-core engineer, issue 5")
    load_scorecard: Any = require("services.scorer.core", "load_scorecard", "scorer-core engineer")
    parse_event: Any = require("services.scorer.core", "parse_event", "scorer-core engineer")
    engine = core(load_scorecard(None))
    apply = engine.apply
    generate, _ = generator()
    states: dict[str, Any] = {}
    last_day = ""
    for count, raw in enumerate(generate(accounts, days, seed), 1):
        event = parse_event(raw)
        states[event.account_id] = apply(states.get(event.account_id), event).state
        if count % 20_000 == 0 and raw["occurred_at"][:10] != last_day:
            last_day = raw["occurred_at"][:10]
            on_progress(min(1.0, count / (accounts * days * 12)))
    return list(states.values())


def rekey(states: list[Any], count: int) -> list[tuple[bytes, bytes]]:
    """``count`` (key, value) changelog records cycling through the sample's states."""
    state_cls: Any = require("services.scorer.core", "AccountState", "scorer-core engineer")
    records = []
    for index, state in enumerate(islice(cycle(states), count)):
        copy = state_cls.from_bytes(state.to_bytes())
        copy.account_id = f"mem-{index:07d}"
        records.append((copy.account_id.encode(), copy.to_bytes()))
    return records


async def measure(ctx: BenchContext) -> dict[str, float]:
    config = ctx.config
    sample = 40 if config.quick else 300
    days = 60 if config.quick else SAMPLE_DAYS
    ctx.progress.update(0.0, f"building state for {sample} accounts x {days} days")
    states = build_states(
        sample, days, config.seed, lambda f: ctx.progress.update(0.4 * f, "building state")
    )
    sizes = [len(state.to_bytes()) for state in states]
    mean = statistics.fmean(sizes)
    ordered = sorted(sizes)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    ctx.note(
        NAME,
        f"bytes_per_account = mean serialized AccountState of {len(sizes)} accounts after "
        f"{days} simulated days (p95 {p95:,} B, max {ordered[-1]:,} B)",
    )
    result = {"bytes_per_account": mean, "bytes_per_account_max": float(ordered[-1])}
    from benchmarks.recovery import measure_recovery

    ctx.progress.update(0.4, f"re-keying to {config.memory_accounts:,} accounts")
    records = rekey(states, config.memory_accounts)
    result["recovery_s"] = await measure_recovery(ctx, records)
    return result
