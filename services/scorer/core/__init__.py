"""Pure scoring core: state, features, health, rules, labels and the churn model.

No I/O, no clock reads: time always comes from event time or an explicit ``now``.
The Faust scorer, ``healthstream evaluate`` and the benchmarks all drive this
package, so what is evaluated is exactly what runs.
"""

from services.scorer.core.engine import ScoringEngine
from services.scorer.core.events import CoreEvent, InvalidEvent, parse_event
from services.scorer.core.model import ChurnModel
from services.scorer.core.results import (
    Alert,
    DriverItem,
    HealthResult,
    Outcome,
    TrainingExample,
)
from services.scorer.core.scorecard import Scorecard, load_scorecard
from services.scorer.core.state import AccountState

__all__ = [
    "AccountState",
    "Alert",
    "ChurnModel",
    "CoreEvent",
    "DriverItem",
    "HealthResult",
    "InvalidEvent",
    "Outcome",
    "Scorecard",
    "ScoringEngine",
    "TrainingExample",
    "load_scorecard",
    "parse_event",
]
