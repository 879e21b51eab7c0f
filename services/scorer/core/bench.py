"""Core speed: events/s of (parse +) apply in-process, used by ``healthstream bench``.

Not part of scoring: this module reads the clock to measure, nothing else does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from services.scorer.core.engine import ScoringEngine
from services.scorer.core.events import CoreEvent, parse_event
from services.scorer.core.scorecard import Scorecard
from services.scorer.core.state import AccountState

RawEvent = bytes | str | Mapping[str, Any] | CoreEvent


def run_core(
    events: Sequence[RawEvent], engine: ScoringEngine | None = None
) -> dict[str, AccountState]:
    """Drive every event through parse (unless already a CoreEvent) and ``apply``."""
    engine = engine if engine is not None else ScoringEngine(Scorecard())
    states: dict[str, AccountState] = {}
    apply = engine.apply
    for raw in events:
        event = raw if isinstance(raw, CoreEvent) else parse_event(raw)
        states[event.account_id] = apply(states.get(event.account_id), event).state
    return states


def measure_core_eps(
    events: Sequence[RawEvent],
    *,
    include_parse: bool = True,
    engine: ScoringEngine | None = None,
) -> float:
    """Events per second through the core on this machine (one thread).

    ``include_parse=False`` parses up front and times only ``apply``; with raw
    bytes the default times parse + apply, which is what a scorer pays.
    """
    if not events:
        return 0.0
    batch: Sequence[RawEvent] = events
    if not include_parse:
        batch = [raw if isinstance(raw, CoreEvent) else parse_event(raw) for raw in events]
    started = time.perf_counter()
    run_core(batch, engine)
    elapsed = time.perf_counter() - started
    return len(events) / elapsed if elapsed > 0 else float("inf")


def synthetic_stream(kind: str, n: int = 18000, seed: int = 3) -> list[bytes]:
    """Raw event bytes: ``dense`` (SaaS-like, 30 events/account/day, 95 % usage) or
    ``sparse`` (CDNOW-like: an order every ~40 days per customer)."""
    import random
    from datetime import UTC, datetime

    import orjson

    rnd = random.Random(seed)
    start = 1714521600

    def at(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    out: list[bytes] = []
    for i in range(n):
        if kind == "sparse":
            body: dict[str, Any] = {
                "account_id": f"c{rnd.randrange(1000)}",
                "type": "usage",
                "name": "order.placed",
                "occurred_at": at(start + i * 200),
                "properties": {"amount": 12.5, "quantity": 1},
            }
        else:
            r = rnd.random()
            body = {"account_id": f"acct-{rnd.randrange(100)}", "occurred_at": at(start + i * 28)}
            if r < 0.95:
                body.update(
                    type="usage",
                    name="feature.used",
                    properties={
                        "user_id": f"u{rnd.randrange(5)}",
                        "feature": f"f{rnd.randrange(4)}",
                    },
                )
            elif r < 0.98:
                body.update(
                    type="ticket",
                    name=rnd.choice(["ticket.opened", "ticket.resolved"]),
                    properties={"ticket_id": f"t{rnd.randrange(9)}", "priority": "high"},
                )
            else:
                body.update(
                    type="feedback", name="nps.response", properties={"score": rnd.randrange(11)}
                )
        body["event_id"] = f"{kind}-{i}"
        out.append(orjson.dumps(body))
    return out


def _main() -> None:
    """``python -m services.scorer.core.bench``: events/s on synthetic dense and sparse streams.

    Also prints the time of a fixed pure-Python loop (~40 ms on an idle core) so
    numbers taken on a shared, loaded machine can be compared.
    """
    started = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    print(f"reference loop: {(time.perf_counter() - started) * 1e3:.0f} ms (idle core: ~40 ms)")
    for kind in ("dense", "sparse"):
        events = synthetic_stream(kind)
        with_parse = measure_core_eps(events)
        apply_only = measure_core_eps(events, include_parse=False)
        print(f"{kind}: parse+apply {with_parse:,.0f} ev/s, apply only {apply_only:,.0f} ev/s")


if __name__ == "__main__":
    _main()
