"""Test-only: a scorer worker whose engine is a trivial stand-in.

Exercises the Faust plumbing (batching consumer, table + changelog, outputs,
DLQ, commit) independently of the scoring rules: score = 100 - 10 * events
seen, one health update per event, an alert when the score hits 50.
"""

from __future__ import annotations

import sys
import zlib

from services.scorer import app as scorer_app
from services.scorer.core import AccountState, Alert, HealthResult, Outcome


class StandInEngine:
    def __init__(self, scorecard, model=None, **_: object) -> None:
        self.scorecard = scorecard
        self.model = model

    def apply(self, state, event):
        state = state or AccountState(event.account_id)
        h = zlib.crc32(event.event_id.encode())
        if h in state.seen:
            return Outcome(state=state, duplicate=True)
        if event.name == "boom":
            raise RuntimeError("stand-in processing error")
        state.seen.append(h)
        state.events += 1
        score = max(0.0, 100.0 - 10.0 * state.events)
        comps = dict.fromkeys(
            ("usage", "engagement", "support", "billing", "sentiment", "lifecycle"), score
        )
        health = HealthResult(
            score,
            "green" if score >= 75 else "yellow" if score >= 50 else "red",
            0.1,
            comps,
            [],
            score,
            "standin",
            event.ts,
        )
        alerts = []
        if score == 50.0:
            alerts.append(
                Alert(
                    f"{event.account_id}:standin",
                    f"{event.account_id}:standin",
                    event.account_id,
                    "score_drop",
                    "warning",
                    score,
                    60.0,
                    [],
                    event.ts,
                    None,
                    "stand-in",
                )
            )
        return Outcome(state=state, health=health, alerts=alerts)

    def tick(self, state, now):
        return Outcome(state=state)


if __name__ == "__main__":
    scorer_app.ScoringEngine = StandInEngine  # type: ignore[assignment,misc]
    from healthstream.cli import main

    sys.exit(main(["scorer"]))
