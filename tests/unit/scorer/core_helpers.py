"""Small builders for scorer-core tests: events at day offsets from a fixed epoch."""

from __future__ import annotations

import itertools
from typing import Any

from services.scorer.core import AccountState, CoreEvent, Outcome, Scorecard, ScoringEngine

DAY = 86400.0
T0 = 1_714_521_600.0  # 2024-05-01T00:00:00Z, a midnight

_ids = itertools.count()


def ev(kind: str, name: str, day: float, account: str = "acme", **props: Any) -> CoreEvent:
    """An event ``day`` days after T0 with a fresh event id."""
    return CoreEvent(f"e{next(_ids)}", account, kind, name, T0 + day * DAY, props)


def usage(day: float, **props: Any) -> CoreEvent:
    return ev("usage", props.pop("name", "feature.used"), day, **props)


class Driver:
    """Feeds events through one engine and keeps the account's state and all outcomes."""

    def __init__(self, scorecard: Scorecard | None = None, **engine_kw: Any) -> None:
        self.engine = ScoringEngine(scorecard or Scorecard(), **engine_kw)
        self.state: AccountState | None = None
        self.outcomes: list[Outcome] = []

    def send(self, *events: CoreEvent) -> Outcome:
        outcome = Outcome(state=self.state) if self.state else None
        for event in events:
            outcome = self.engine.apply(self.state, event)
            self.state = outcome.state
            self.outcomes.append(outcome)
        assert outcome is not None
        return outcome

    def tick(self, day: float) -> Outcome:
        assert self.state is not None
        outcome = self.engine.tick(self.state, T0 + day * DAY)
        self.outcomes.append(outcome)
        return outcome

    def daily_usage(self, first: int, last: int, per_day: int = 3, users: int = 3) -> None:
        for day in range(first, last + 1):
            for k in range(per_day):
                self.send(usage(day + 0.3 + k * 0.01, user_id=f"u{k % users}", feature=f"f{k}"))

    @property
    def alerts(self) -> list[str]:
        return [alert.reason for outcome in self.outcomes for alert in outcome.alerts]

    def features(self, day: float) -> dict[str, float]:
        assert self.state is not None
        return self.engine.score(self.state, T0 + day * DAY).features
