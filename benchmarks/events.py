"""The one set of simulated events every measurement of a run uses.

Events are generated once, encoded once (orjson) and shared, so differences
between measurements come from the code measured, never from the input.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

Generator = Callable[[int, int, int], Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class EventSet:
    """Events as dicts (for HTTP and the core) and as encoded bytes (for Kafka)."""

    events: list[dict[str, Any]]
    source: str
    accounts: int
    seed: int
    encoded: list[bytes] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.events)

    def describe(self) -> dict[str, Any]:
        distinct = len({e["account_id"] for e in self.events})
        return {"source": self.source, "count": len(self.events), "accounts": distinct}


def generator() -> tuple[Generator, str]:
    """Prefer the project's simulator; fall back to the benchmark's own small generator."""
    for name in ("simulator", "simulator.generator"):
        try:
            generate: Generator = importlib.import_module(name).generate
        except (ImportError, AttributeError):
            continue
        return generate, f"{name}.generate"
    from benchmarks import fallback_events

    return fallback_events.generate, "benchmarks.fallback_events.generate"


def load_events(count: int, accounts: int, seed: int = 7, days: int = 365) -> EventSet:
    """The first ``count`` events the generator yields for ``accounts`` accounts."""
    generate, source = generator()
    events = list(islice(generate(accounts, days, seed), count))
    if len(events) < count:
        raise RuntimeError(
            f"{source} yielded only {len(events)} events for {accounts} accounts over "
            f"{days} days; {count} were asked for"
        )
    encoded = [orjson.dumps(event) for event in events]
    return EventSet(events=events, source=source, accounts=accounts, seed=seed, encoded=encoded)
