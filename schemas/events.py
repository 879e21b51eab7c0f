"""The event envelope: what every source sends and every topic carries."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas._types import EventName, Identifier, Timestamp


class EventType(StrEnum):
    USAGE = "usage"
    TICKET = "ticket"
    BILLING = "billing"
    FEEDBACK = "feedback"
    ACCOUNT = "account"


#: Default topic per event type (settings may rename topics; this is the design's naming).
EVENT_TOPIC_BY_TYPE: dict[EventType, str] = {
    EventType.USAGE: "usage-events",
    EventType.TICKET: "ticket-events",
    EventType.BILLING: "billing-events",
    EventType.FEEDBACK: "feedback-events",
    EventType.ACCOUNT: "account-events",
}

Priority = Literal["low", "normal", "high", "urgent"]

# Score ranges of the two survey names whose scale is fixed by convention.
_SCORE_RANGE: dict[str, tuple[int, int]] = {"nps.response": (0, 10), "csat.response": (1, 5)}


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"properties.{name} must be a number")
    try:
        number = float(value)  # an int beyond 1e308 overflows here rather than in isfinite
    except OverflowError:
        raise ValueError(f"properties.{name} must be a finite number") from None
    if not math.isfinite(number):
        raise ValueError(f"properties.{name} must be a finite number")
    return number


class Event(BaseModel):
    """One canonical event. Unknown names and extra properties are kept: telemetry evolves."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    event_id: Identifier = Field(description="Globally unique id; the dedupe key.")
    account_id: Identifier = Field(description="The account; the Kafka message key.")
    type: EventType = Field(description="Selects the topic.")
    name: EventName = Field(
        description="What happened, e.g. login, feature.used, ticket.opened, payment.failed."
    )
    occurred_at: Timestamp = Field(description="Event time, RFC 3339 with a zone.")
    source: str | None = Field(
        default=None, max_length=64, description="api, segment, zendesk, stripe, replay, ..."
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Free-form; well-known keys are typed: amount, mrr (finite numbers), currency "
            "(3-letter code), quantity (non-negative integer), score (an integer, 0-10 for "
            "nps.response, 1-5 for csat.response), priority (low|normal|high|urgent), "
            "user_id, feature, status, plan, csm, renewal_date (RFC 3339 or YYYY-MM-DD)."
        ),
    )

    @field_validator("type", mode="before")
    @classmethod
    def _type_is_exact(cls, value: Any) -> Any:
        # Reject "Usage" or " usage": a typo must fail loudly, not land on the wrong topic.
        if not isinstance(value, str) or value not in EventType._value2member_map_:
            raise ValueError("must be one of usage, ticket, billing, feedback, account")
        return value

    @model_validator(mode="after")
    def _well_known_properties(self) -> Event:
        props = self.properties
        for key in ("amount", "mrr"):
            if key in props and props[key] is not None:
                _finite_number(key, props[key])
        if "quantity" in props and props["quantity"] is not None:
            q = props["quantity"]
            # JSON Schema counts 3.0 as an integer, and so do many producers' encoders:
            # accept it and normalise, so the scorer always sees an int.
            if isinstance(q, float) and q.is_integer():
                q = props["quantity"] = int(q)
            if isinstance(q, bool) or not isinstance(q, int) or q < 0:
                raise ValueError("properties.quantity must be a non-negative integer")
        if "currency" in props and props["currency"] is not None:
            c = props["currency"]
            if not (isinstance(c, str) and len(c) == 3 and c.isascii() and c.isalpha()):
                raise ValueError("properties.currency must be a 3-letter ISO 4217 code")
        if props.get("priority") is not None and props["priority"] not in (
            "low",
            "normal",
            "high",
            "urgent",
        ):
            raise ValueError("properties.priority must be one of low, normal, high, urgent")
        if self.name in _SCORE_RANGE:
            low, high = _SCORE_RANGE[self.name]
            score = props.get("score")
            # Both surveys answer on whole points; 3.0 is normalised as quantity is.
            if isinstance(score, float) and score.is_integer():
                score = props["score"] = int(score)
            if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
                raise ValueError(f"properties.score must be an integer from {low} to {high}")
        for key in ("user_id", "feature", "status", "plan", "csm"):
            if key in props and props[key] is not None and not isinstance(props[key], str):
                raise ValueError(f"properties.{key} must be a string")
        return self

    @property
    def topic_suffix(self) -> str:
        return EVENT_TOPIC_BY_TYPE[self.type]
