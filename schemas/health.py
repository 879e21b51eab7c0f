"""Health update: the value published on the compacted ``account-health`` topic."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas._types import Identifier, Timestamp


class Band(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class Components(BaseModel):
    """Scorecard component scores, each 0-100 (100 = healthy)."""

    model_config = ConfigDict(extra="forbid")

    usage: float = Field(ge=0, le=100)
    engagement: float = Field(ge=0, le=100)
    support: float = Field(ge=0, le=100)
    billing: float = Field(ge=0, le=100)
    sentiment: float = Field(ge=0, le=100)
    lifecycle: float = Field(ge=0, le=100)


class Driver(BaseModel):
    """One reason behind a score, in words a CSM understands."""

    model_config = ConfigDict(extra="forbid")

    feature: str = Field(description="Machine name of the signal, e.g. usage_trend.")
    component: str = Field(description="Scorecard component the signal belongs to.")
    contribution: float = Field(
        description="Signed points this signal adds to (+) or takes from (-) the score."
    )
    sentence: str = Field(description='Human sentence, e.g. "usage down 62% vs last 4 weeks".')


class HealthUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: Identifier
    as_of: Timestamp = Field(description="Event time of the newest event this score includes.")
    score: float = Field(ge=0, le=100, description="Health 0-100, 100 = healthy.")
    band: Band
    churn_probability: float = Field(ge=0, le=1)
    components: Components
    drivers: list[Driver] = Field(
        default_factory=list, description="Top drivers, most important first."
    )
    model_version: str = Field(description="Scorecard and model version that produced the score.")
