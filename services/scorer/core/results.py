"""What the core hands back: health results, alerts, training examples, outcomes.

Plain slotted classes, not pydantic: they are built per event on the hot path.
``to_json_bytes`` renders exactly the JSON the ``schemas`` contracts validate
(tests check that), and ``to_update`` / ``to_model`` give the pydantic objects
for callers that want them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from services.scorer.core.events import format_timestamp

if TYPE_CHECKING:
    from schemas import HealthUpdate, RiskAlert
    from services.scorer.core.state import AccountState

COMPONENTS = ("usage", "engagement", "support", "billing", "sentiment", "lifecycle")


@dataclass(slots=True)
class DriverItem:
    """One reason behind the score: signed points and a sentence a CSM understands."""

    feature: str
    component: str
    contribution: float
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "component": self.component,
            "contribution": self.contribution,
            "sentence": self.sentence,
        }


@dataclass(slots=True)
class HealthResult:
    """The full current health of one account at ``as_of`` (event time, epoch seconds)."""

    score: float
    band: str
    churn_probability: float
    components: dict[str, float]
    drivers: list[DriverItem]
    scorecard_score: float
    model_version: str
    as_of: float
    features: dict[str, float] = field(default_factory=dict)

    def as_dict(self, account_id: str) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "as_of": format_timestamp(self.as_of),
            "score": self.score,
            "band": self.band,
            "churn_probability": self.churn_probability,
            "components": {name: self.components[name] for name in COMPONENTS},
            "drivers": [driver.as_dict() for driver in self.drivers],
            "model_version": self.model_version,
        }

    def to_json_bytes(self, account_id: str) -> bytes:
        """The ``account-health`` value, valid ``schemas.HealthUpdate`` JSON, without pydantic."""
        return orjson.dumps(self.as_dict(account_id))

    def to_update(self, account_id: str) -> HealthUpdate:
        from schemas import HealthUpdate

        return HealthUpdate.model_validate(self.as_dict(account_id))


@dataclass(slots=True)
class Alert:
    """A risk alert; ``alert_id`` and ``dedupe_key`` are stable across replays."""

    alert_id: str
    dedupe_key: str
    account_id: str
    reason: str
    severity: str
    score: float
    previous_score: float | None
    drivers: list[DriverItem]
    occurred_at: float
    csm: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "dedupe_key": self.dedupe_key,
            "account_id": self.account_id,
            "reason": self.reason,
            "severity": self.severity,
            "score": self.score,
            "previous_score": self.previous_score,
            "drivers": [driver.as_dict() for driver in self.drivers],
            "occurred_at": format_timestamp(self.occurred_at),
            "csm": self.csm,
            "message": self.message,
        }

    def to_json_bytes(self) -> bytes:
        """The ``risk-alerts`` value, valid ``schemas.RiskAlert`` JSON."""
        return orjson.dumps(self.as_dict())

    def to_model(self) -> RiskAlert:
        from schemas import RiskAlert

        return RiskAlert.model_validate(self.as_dict())


@dataclass(slots=True)
class TrainingExample:
    """(features at ``ts_features``, outcome known at ``ts_label``): label 1 churn, 0 retained.

    ``scorecard``: the scorecard score taken with the features, so the blend can
    judge scorecard and model on the same outcome (None in examples from before it).
    """

    account_id: str
    ts_features: float
    features: dict[str, float]
    label: int
    ts_label: float
    scorecard: float | None = None

    def to_json_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "account_id": self.account_id,
            "ts_features": self.ts_features,
            "features": self.features,
            "label": self.label,
            "ts_label": self.ts_label,
        }
        if self.scorecard is not None:
            data["scorecard"] = self.scorecard
        return orjson.dumps(data)

    @classmethod
    def from_json_bytes(cls, raw: bytes | str) -> TrainingExample:
        data = orjson.loads(raw)
        scorecard = data.get("scorecard")
        return cls(
            account_id=str(data["account_id"]),
            ts_features=float(data["ts_features"]),
            features={str(k): float(v) for k, v in data["features"].items()},
            label=int(data["label"]),
            ts_label=float(data["ts_label"]),
            scorecard=None if scorecard is None else float(scorecard),
        )


@dataclass(slots=True)
class Outcome:
    """Result of one ``apply`` or ``tick``.

    ``health`` is set only when the score or band changed by at least the
    scorecard's publish threshold (or on the first score), so the caller
    publishes exactly when it is set.
    """

    state: AccountState
    health: HealthResult | None = None
    alerts: list[Alert] = field(default_factory=list)
    examples: list[TrainingExample] = field(default_factory=list)
    duplicate: bool = False
    late: bool = False
